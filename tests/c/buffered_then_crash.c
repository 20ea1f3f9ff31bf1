/* Many of the calls syscall buffering handles (open, read, pread, lseek,
 * fstat, stat, clock_gettime, getdents64, writes to a regular file, close)
 * on files it creates in DIR, folded into a checksum kept in memory only;
 * then a write through NULL (SIGSEGV) with no traced syscall in between,
 * so that buffered records are still in the buffer when the program dies
 * (issue 5: the trace must keep them and replay up to the crash).
 *
 * Usage: buffered_then_crash DIR [print]
 * With "print", the checksum is printed (and flushed) before the crash.
 * The checksum depends only on what the program wrote and read, not on
 * DIR's name, time, inode numbers or directory order. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define ITER 200
#define FILES 4

/* Read by the test from core files (nm gives the address). */
volatile unsigned long long checksum = 0xcbf29ce484222325ULL;
volatile unsigned long long calls;
volatile int clock_ok = 1;

static void mix(unsigned long long v) {
    checksum = (checksum ^ v) * 0x100000001b3ULL;
    calls++;
}

static unsigned long long hash_bytes(const void *p, size_t n) {
    const unsigned char *b = p;
    unsigned long long h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ULL;
    return h;
}

struct linux_dirent64_ {
    unsigned long long d_ino;
    long long d_off;
    unsigned short d_reclen;
    unsigned char d_type;
    char d_name[];
};

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s DIR [print]\n", argv[0]);
        return 2;
    }
    const char *dir = argv[1];
    int print = argc > 2 && strcmp(argv[2], "print") == 0;
    char path[FILES][4096], log[4096];
    for (int f = 0; f < FILES; f++) {
        snprintf(path[f], sizeof path[f], "%s/f%d", dir, f);
        int fd = open(path[f], O_CREAT | O_WRONLY | O_TRUNC, 0644);
        if (fd < 0) { perror("create"); return 1; }
        char text[200];
        for (int i = 0; i < (int)sizeof text; i++) text[i] = (char)('a' + (i * 7 + f) % 26);
        if (write(fd, text, 100 + 25 * f) != 100 + 25 * f) { perror("write"); return 1; }
        close(fd);
    }
    snprintf(log, sizeof log, "%s/log", dir);
    int logfd = open(log, O_CREAT | O_WRONLY | O_TRUNC, 0644);
    if (logfd < 0) { perror("log"); return 1; }

    /* From here on, nothing is printed: the state lives in memory only. */
    struct timespec last = {0, 0};
    for (int i = 0; i < ITER; i++) {
        char buf[4096];
        int fd = open(path[i % FILES], O_RDONLY);
        if (fd < 0) { mix(errno); continue; }
        ssize_t n = read(fd, buf, 64);
        mix(n);
        if (n > 0) mix(hash_bytes(buf, (size_t)n));
        mix(lseek(fd, 16 + i % 8, SEEK_SET));
        n = read(fd, buf, 32);
        mix(n);
        if (n > 0) mix(hash_bytes(buf, (size_t)n));
        n = pread(fd, buf, 8, 8);
        if (n > 0) mix(hash_bytes(buf, (size_t)n));
        struct stat st;
        mix(fstat(fd, &st) == 0 ? (unsigned long long)st.st_size : 1ULL << 40);
        mix(close(fd));
        mix(stat(path[(i + 1) % FILES], &st) == 0 ? (unsigned long long)st.st_size : 1ULL << 41);

        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        if (ts.tv_sec < last.tv_sec || (ts.tv_sec == last.tv_sec && ts.tv_nsec < last.tv_nsec))
            clock_ok = 0;
        last = ts;

        /* getdents64 directly (buffered); names summed, so order does not count. */
        int dfd = open(dir, O_RDONLY | O_DIRECTORY);
        if (dfd >= 0) {
            unsigned long long names = 0;
            int entries = 0;
            for (;;) {
                ssize_t got = getdents64(dfd, buf, sizeof buf);
                if (got <= 0) break;
                for (ssize_t off = 0; off < got;) {
                    struct linux_dirent64_ *d = (void *)(buf + off);
                    names += hash_bytes(d->d_name, strlen(d->d_name));
                    entries++;
                    off += d->d_reclen;
                }
            }
            close(dfd);
            mix(names);
            mix(entries);
        }
        /* Now and then through readdir too (libc's own getdents). */
        if (i % 50 == 0) {
            DIR *d = opendir(dir);
            int entries = 0;
            struct dirent *e;
            while (d && (e = readdir(d))) entries++;
            if (d) closedir(d);
            mix(entries);
        }
        unsigned long long c = checksum;
        mix(write(logfd, &c, sizeof c));
    }
    mix(lseek(logfd, 0, SEEK_CUR));
    mix(clock_ok);

    if (print) {
        printf("checksum %016llx after %llu steps, clock monotonic: %s\n", checksum, calls,
               clock_ok ? "yes" : "no");
        fflush(stdout);
    }
    /* Dies here, the checksum untold. */
    *(volatile unsigned long long *)0 = checksum;
    printf("FAIL: survived\n");
    return 0;
}
