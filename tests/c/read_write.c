/* read/write/pread/pwrite/readv/writev on a file in a fresh directory.
 * Usage: read_write [DIR]  (default: a mkdtemp directory under /tmp). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

static int failures;

static void check(int ok, const char *what) {
    printf("%s: %s\n", what, ok ? "ok" : "FAIL");
    if (!ok) failures++;
}

static void show(const char *label, const char *buf, ssize_t n) {
    printf("%s (%zd bytes): \"", label, n);
    for (ssize_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)buf[i];
        if (c >= 32 && c < 127 && c != '"' && c != '\\') putchar(c);
        else printf("\\x%02x", c);
    }
    printf("\"\n");
}

int main(int argc, char **argv) {
    char tmpl[] = "/tmp/rrpipe-rw-XXXXXX";
    const char *dir = argc > 1 ? argv[1] : mkdtemp(tmpl);
    int own_dir = argc <= 1;
    if (!dir) { perror("mkdtemp"); return 1; }
    char path[4096];
    snprintf(path, sizeof path, "%s/data.bin", dir);

    int fd = open(path, O_CREAT | O_RDWR | O_TRUNC, 0644);
    if (fd < 0) { perror("open"); return 1; }

    ssize_t n = write(fd, "hello, world\n", 13);
    printf("write -> %zd\n", n);
    check(n == 13, "write");

    n = pwrite(fd, "PWRITE", 6, 100);
    printf("pwrite at 100 -> %zd\n", n);
    check(n == 6, "pwrite");
    off_t pos = lseek(fd, 0, SEEK_CUR);
    printf("offset after pwrite: %ld\n", (long)pos);
    check(pos == 13, "pwrite keeps offset");

    struct iovec wv[3] = {
        {"alpha ", 6}, {"beta ", 5}, {"gamma\n", 6},
    };
    n = writev(fd, wv, 3);
    printf("writev -> %zd\n", n);
    check(n == 17, "writev");

    pos = lseek(fd, 0, SEEK_END);
    printf("size: %ld\n", (long)pos);
    check(pos == 106, "size");

    char buf[256];
    memset(buf, 0, sizeof buf);
    lseek(fd, 0, SEEK_SET);
    n = read(fd, buf, 30);
    show("read 30", buf, n);
    check(n == 30 && memcmp(buf, "hello, world\nalpha beta gamma\n", 30) == 0, "read");

    memset(buf, 0, sizeof buf);
    n = pread(fd, buf, 10, 98);
    show("pread 10 at 98", buf, n);
    check(n == 8 && memcmp(buf, "\0\0PWRITE", 8) == 0, "pread at end");

    char a[5], b[8], c[4];
    struct iovec rv[3] = {{a, sizeof a}, {b, sizeof b}, {c, sizeof c}};
    lseek(fd, 7, SEEK_SET);
    n = readv(fd, rv, 3);
    show("readv a", a, sizeof a);
    show("readv b", b, sizeof b);
    show("readv c", c, sizeof c);
    printf("readv -> %zd\n", n);
    check(n == 17 && memcmp(a, "world", 5) == 0 && memcmp(b, "\nalpha b", 8) == 0 &&
              memcmp(c, "eta ", 4) == 0,
          "readv");

    /* A read at EOF and a read from a bad fd. */
    lseek(fd, 0, SEEK_END);
    n = read(fd, buf, sizeof buf);
    printf("read at EOF -> %zd\n", n);
    check(n == 0, "read at EOF");
    errno = 0;
    n = read(-1, buf, 1);
    printf("read(-1) -> %zd errno=%d (%s)\n", n, errno, strerror(errno));
    check(n == -1 && errno == EBADF, "read bad fd");

    /* A larger transfer, checked by sum. */
    static char big[1 << 16];
    for (size_t i = 0; i < sizeof big; i++) big[i] = (char)(i * 31 + 7);
    n = pwrite(fd, big, sizeof big, 4096);
    printf("pwrite big -> %zd\n", n);
    static char back[1 << 16];
    n = pread(fd, back, sizeof back, 4096);
    unsigned long sum = 0;
    for (ssize_t i = 0; i < n; i++) sum = sum * 131 + (unsigned char)back[i];
    printf("pread big -> %zd sum=%lu\n", n, sum);
    check(n == (ssize_t)sizeof big && memcmp(big, back, sizeof big) == 0, "big round trip");

    close(fd);
    unlink(path);
    if (own_dir) rmdir(dir);
    printf("%s\n", failures ? "FAILED" : "ALL OK");
    return failures != 0;
}
