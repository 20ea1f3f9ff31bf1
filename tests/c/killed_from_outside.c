/* Prints "pid N", then loops for ever until someone kills it (SIGKILL from
 * another process): each pass makes calls the preload library buffers
 * (getppid, stat), traced ones (uname, and getppid through libc's
 * syscall(), which the library does not wrap) and a short stretch of user
 * code, so that a kill lands at any of these points.
 *
 *     killed_from_outside [ignore] [threads]
 *
 * "ignore": SIGINT and SIGTERM are ignored (a test interrupts `rrpipe
 * record` twice; the second interruption kills the program). "threads":
 * two more threads, started after the "pid" line, run the same loop
 * (build with -pthread). */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

static volatile unsigned long sink;

static void *loop(void *arg) {
    struct stat st;
    struct utsname u;
    for (unsigned long pass = 0;; pass++) {
        sink += (unsigned long)getppid();
        if (stat("/", &st) == 0)
            sink += st.st_ino;
        if (pass % 4 == 0 && uname(&u) == 0)
            sink += (unsigned char)u.sysname[0];
        sink += (unsigned long)syscall(SYS_getppid);
        for (int i = 0; i < 2000; i++)
            sink = sink * 31 + (unsigned long)i;
    }
    return arg;
}

int main(int argc, char **argv) {
    int threads = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "ignore") == 0) {
            signal(SIGINT, SIG_IGN);
            signal(SIGTERM, SIG_IGN);
        } else if (strcmp(argv[i], "threads") == 0) {
            threads = 2;
        }
    }
    /* (First: the threads' loops, with each event costly to record
     * (checksums), could hold the main thread back for long.) */
    printf("pid %d\n", getpid());
    fflush(stdout);
    for (int i = 0; i < threads; i++) {
        pthread_t t;
        if (pthread_create(&t, NULL, loop, NULL) != 0) {
            perror("pthread_create");
            return 2;
        }
    }
    loop(NULL);
}
