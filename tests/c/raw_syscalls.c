/* Syscalls that do not go through the libc entry points that syscall
 * buffering wraps: syscall(2) and a raw `syscall` instruction (and, when
 * built with -static, every call). They must be traced as before.
 * Usage: raw_syscalls DIR */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static long raw3(long nr, long a, long b, long c) {
    long r;
    __asm__ volatile("syscall"
                     : "=a"(r)
                     : "a"(nr), "D"(a), "S"(b), "d"(c)
                     : "rcx", "r11", "memory");
    return r;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/raw.txt", argv[1]);
    int failures = 0;

    int fd = open(path, O_CREAT | O_RDWR | O_TRUNC, 0644);
    if (fd < 0) {
        perror("open");
        return 1;
    }
    const char *a = "through syscall(2)\n";
    const char *b = "through a raw syscall instruction\n";
    long n1 = syscall(SYS_write, fd, a, strlen(a));
    long n2 = raw3(SYS_write, fd, (long)b, (long)strlen(b));
    printf("wrote %ld and %ld bytes\n", n1, n2);
    failures += n1 != (long)strlen(a) || n2 != (long)strlen(b);

    long pos = raw3(SYS_lseek, fd, 0, SEEK_SET);
    char buf[256];
    long r = raw3(SYS_read, fd, (long)buf, sizeof buf);
    printf("lseek -> %ld, raw read -> %ld bytes:\n%.*s", pos, r, r > 0 ? (int)r : 0, buf);
    failures += r != n1 + n2;

    memset(buf, 0, sizeof buf);
    long p = syscall(SYS_pread64, fd, buf, 7, 8);
    printf("syscall(SYS_pread64) -> %ld: \"%s\"\n", p, buf);
    failures += p != 7 || strcmp(buf, "syscall");

    long bad = raw3(SYS_read, 999, (long)buf, 1);
    printf("raw read of fd 999 -> %ld (-EBADF is %d)\n", bad, -EBADF);
    failures += bad != -EBADF;
    errno = 0;
    long bad2 = syscall(SYS_read, 999, buf, 1);
    int e = errno;
    printf("syscall(SYS_read, 999) -> %ld errno %d\n", bad2, e);
    failures += bad2 != -1 || e != EBADF;

    printf("pid matches: %s\n", raw3(SYS_getpid, 0, 0, 0) == getpid() ? "yes" : "no");
    failures += raw3(SYS_close, fd, 0, 0) != 0;
    printf(failures ? "FAILURES: %d\n" : "ALL OK\n", failures);
    return failures != 0;
}
