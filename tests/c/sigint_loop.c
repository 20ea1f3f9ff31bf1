/* A long loop printing a numbered line every 10 ms (about 20 s in all),
 * for a test that interrupts `rrpipe record` with SIGINT: the first line
 * gives the pid. */
#define _GNU_SOURCE
#include <stdio.h>
#include <time.h>
#include <unistd.h>

int main(void) {
    printf("pid %d\n", getpid());
    fflush(stdout);
    for (int i = 0; i < 2000; i++) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
        printf("line %d\n", i);
        fflush(stdout);
    }
    printf("finished\n");
    return 0;
}
