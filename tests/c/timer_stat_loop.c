/* An ITIMER_REAL timer interrupts a loop of stat("/") calls, which the
 * preload library buffers (no ptrace stop each):
 *
 *     timer_stat_loop [PERIOD_US [CALLS]]
 *
 * PERIOD_US: the timer's period in microseconds (default 10000, at most
 * 999999); CALLS: how many stat calls (default 250000, about 70 ms
 * natively). The handler counts the signals and sums the iterations it
 * interrupted: both differ at each run, and a replay must reproduce them.
 *
 * CALLS = 0: loop for ever, ignoring SIGINT and SIGTERM, after printing
 * "pid N" (for a test that interrupts `rrpipe record` twice). */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

static volatile unsigned long handled;
static volatile unsigned long iteration;
static volatile unsigned long sum;

static void on_alarm(int sig) {
    (void)sig;
    handled++;
    sum = sum * 31 + iteration;
}

int main(int argc, char **argv) {
    long period = argc > 1 ? atol(argv[1]) : 10000;
    unsigned long calls = argc > 2 ? strtoul(argv[2], NULL, 10) : 250000;
    int forever = calls == 0;

    if (forever) {
        signal(SIGINT, SIG_IGN);
        signal(SIGTERM, SIG_IGN);
        printf("pid %d\n", getpid());
        fflush(stdout);
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGALRM, &sa, NULL);

    struct itimerval it = {{0, period}, {0, period}};
    if (setitimer(ITIMER_REAL, &it, NULL) != 0) {
        perror("setitimer");
        return 2;
    }
    struct stat st;
    unsigned long failed = 0, inodes = 0;
    for (iteration = 0; forever || iteration < calls; iteration++) {
        if (stat("/", &st) != 0)
            failed++;
        inodes += st.st_ino;
    }
    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &off, NULL);

    printf("handled: %lu\n", handled);
    printf("checksum: %016lx\n", sum);
    printf("calls: %lu, failed: %lu, inodes: %lu\n", calls, failed, inodes);
    printf("%s\n", failed == 0 && handled > 0 ? "ALL OK" : "FAIL: no signal or a failed stat");
    return failed == 0 && handled > 0 ? 0 : 1;
}
