/* fork; the child writes 64 KiB (a known pattern, in uneven chunks) into a
 * pipe; the parent reads it all in odd-sized reads, checksums it (FNV-1a)
 * and compares with the checksum it computes itself. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#define TOTAL (64 * 1024)

static unsigned char pattern(size_t i) {
    return (unsigned char)((i * 131 + (i >> 8) * 7 + 3) & 0xff);
}

static uint64_t fnv1a(const unsigned char *p, size_t n) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

int main(void) {
    static unsigned char expect[TOTAL], got[TOTAL + 1];
    for (size_t i = 0; i < TOTAL; i++)
        expect[i] = pattern(i);
    int fds[2];
    if (pipe(fds) != 0) {
        perror("pipe");
        return 2;
    }
    printf("parent: forking the writer\n");
    fflush(stdout);
    pid_t p = fork();
    if (p < 0) {
        perror("fork");
        return 2;
    }
    if (p == 0) {
        close(fds[0]);
        size_t off = 0, chunk = 1000;
        while (off < TOTAL) {
            size_t n = TOTAL - off < chunk ? TOTAL - off : chunk;
            ssize_t w = write(fds[1], expect + off, n);
            if (w <= 0)
                _exit(3);
            off += (size_t)w;
            chunk = chunk * 3 % 7919 + 1; /* uneven sizes, some above a page */
        }
        close(fds[1]);
        _exit(0);
    }
    close(fds[1]);
    size_t total = 0;
    for (;;) {
        ssize_t n = read(fds[0], got + total, 777 < TOTAL + 1 - total ? 777 : TOTAL + 1 - total);
        if (n < 0) {
            perror("read");
            return 2;
        }
        if (n == 0)
            break;
        total += (size_t)n;
    }
    close(fds[0]);
    int st;
    pid_t w = waitpid(p, &st, 0);
    uint64_t h = fnv1a(got, total), want = fnv1a(expect, TOTAL);
    printf("read %zu bytes, fnv1a %016llx (expected %zu bytes, %016llx)\n", total,
           (unsigned long long)h, (size_t)TOTAL, (unsigned long long)want);
    printf("writer: reaped=%s exited=%d code=%d\n", w == p ? "yes" : "no", WIFEXITED(st),
           WEXITSTATUS(st));
    int ok = total == TOTAL && h == want && w == p && WIFEXITED(st) && WEXITSTATUS(st) == 0;
    printf("%s\n", ok ? "ALL OK" : "FAIL: data or status differ");
    return ok ? 0 : 1;
}
