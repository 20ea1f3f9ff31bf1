/* Write a file, map it MAP_PRIVATE and MAP_SHARED, read through the
 * mappings, print checksums. The file is deleted at the end: replay must
 * not need it. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define SIZE (5 * 4096 + 123)

static int failures;

static void check(int ok, const char *what) {
    printf("%s: %s\n", what, ok ? "ok" : "FAIL");
    if (!ok) failures++;
}

static uint64_t fnv(const unsigned char *p, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) { h ^= p[i]; h *= 0x100000001b3ull; }
    return h;
}

int main(int argc, char **argv) {
    char tmpl[] = "/tmp/rrpipe-mmap-XXXXXX";
    const char *dir = argc > 1 ? argv[1] : mkdtemp(tmpl);
    int own_dir = argc <= 1;
    if (!dir) { perror("mkdtemp"); return 1; }
    char path[4096];
    snprintf(path, sizeof path, "%s/mapped.dat", dir);

    static unsigned char data[SIZE];
    uint32_t x = 12345;
    for (size_t i = 0; i < SIZE; i++) { x = x * 1103515245u + 12345u; data[i] = x >> 24; }
    uint64_t want = fnv(data, SIZE);
    printf("file checksum: %016llx\n", (unsigned long long)want);

    int fd = open(path, O_CREAT | O_RDWR | O_TRUNC, 0600);
    if (fd < 0) { perror("open"); return 1; }
    if (write(fd, data, SIZE) != SIZE) { perror("write"); return 1; }

    unsigned char *priv = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    check(priv != MAP_FAILED, "mmap private");
    uint64_t h = fnv(priv, SIZE);
    printf("private mapping at %p checksum: %016llx\n", (void *)priv, (unsigned long long)h);
    check(h == want, "private mapping matches the file");

    unsigned char *shared = mmap(NULL, SIZE, PROT_READ, MAP_SHARED, fd, 0);
    check(shared != MAP_FAILED, "mmap shared");
    h = fnv(shared, SIZE);
    printf("shared mapping at %p checksum: %016llx\n", (void *)shared, (unsigned long long)h);
    check(h == want, "shared mapping matches the file");

    /* Past the end of the file, within the last page: zeros. */
    size_t tail = 6 * 4096 - SIZE;
    int zeros = 1;
    for (size_t i = 0; i < tail; i++) zeros &= priv[SIZE + i] == 0;
    check(zeros, "tail of the last page is zero");

    /* Copy-on-write: the private mapping changes, the file does not. */
    for (size_t i = 0; i < SIZE; i += 4096) priv[i] ^= 0xff;
    h = fnv(priv, SIZE);
    printf("private mapping after writes: %016llx\n", (unsigned long long)h);
    check(h != want, "private mapping changed");
    static unsigned char back[SIZE];
    check(pread(fd, back, SIZE, 0) == SIZE && fnv(back, SIZE) == want, "file unchanged");
    check(fnv(shared, SIZE) == want, "shared mapping unchanged");

    /* A mapping at an offset. */
    unsigned char *off = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, fd, 2 * 4096);
    check(off != MAP_FAILED && memcmp(off, data + 2 * 4096, 4096) == 0, "mapping at offset");
    printf("offset mapping checksum: %016llx\n", (unsigned long long)fnv(off, 4096));

    munmap(priv, SIZE);
    munmap(shared, SIZE);
    munmap(off, 4096);
    close(fd);
    unlink(path);
    if (own_dir) rmdir(dir);
    printf("%s\n", failures ? "FAILED" : "ALL OK");
    return failures != 0;
}
