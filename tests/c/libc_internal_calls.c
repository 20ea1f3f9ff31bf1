/* Syscalls libc makes from inside itself, which no wrapper of the preload
 * library sees: setlocale's loading of the locale files (openat, fstat,
 * read, mmap, close) and stdio's file I/O (open, fstat, write, read,
 * lseek, close), 40 rounds of it. With buffering, the tracer patches each
 * such call site at its first call; the later calls are buffered.
 *
 * With "thread", a second thread waits in a read from a pipe all along:
 * the tracer must then leave the call sites alone (another thread could
 * be inside one).
 *
 * Usage: libc_internal_calls DIR [thread] */
#include <langinfo.h>
#include <locale.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int pipe_fds[2];

static void *waiter(void *arg) {
    (void)arg;
    char c = 0;
    if (read(pipe_fds[0], &c, 1) != 1 || c != 'x')
        return (void *)1;
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s DIR [thread]\n", argv[0]);
        return 2;
    }
    int threaded = argc > 2 && strcmp(argv[2], "thread") == 0;
    pthread_t t;
    if (threaded && (pipe(pipe_fds) != 0 || pthread_create(&t, NULL, waiter, NULL) != 0)) {
        perror("thread");
        return 1;
    }
    int ok = 1;
    const char *loc = setlocale(LC_ALL, "C.UTF-8");
    char codeset[32];
    snprintf(codeset, sizeof codeset, "%s", loc ? nl_langinfo(CODESET) : "none");

    char path[4096];
    snprintf(path, sizeof path, "%s/stdio.txt", argv[1]);
    unsigned long sum = 0;
    long lines = 0;
    for (int round = 0; round < 40; round++) {
        FILE *f = fopen(path, "w");
        if (!f) {
            perror("fopen w");
            return 1;
        }
        for (int i = 0; i < 300; i++)
            fprintf(f, "round %d line %d: %s\n", round, i, "the quick brown fox");
        if (fclose(f) != 0) {
            perror("fclose");
            return 1;
        }
        f = fopen(path, "r");
        if (!f) {
            perror("fopen r");
            return 1;
        }
        char line[256];
        long n = 0;
        while (fgets(line, sizeof line, f)) {
            for (char *c = line; *c; c++)
                sum = sum * 31 + (unsigned char)*c;
            n++;
        }
        /* Back to the start (lseek) and once more. */
        rewind(f);
        if (!fgets(line, sizeof line, f) || strncmp(line, "round", 5) != 0)
            ok = 0;
        fclose(f);
        if (n != 300)
            ok = 0;
        lines += n;
    }
    if (threaded) {
        void *r;
        if (write(pipe_fds[1], "x", 1) != 1 || pthread_join(t, &r) != 0 || r != NULL)
            ok = 0;
    }
    printf("locale: %s, codeset %s\n", loc ? loc : "(none)", codeset);
    printf("read back: %ld lines, sum %lu\n", lines, sum);
    printf(ok ? "ALL OK\n" : "FAILED\n");
    return ok ? 0 : 1;
}
