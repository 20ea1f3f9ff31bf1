/* An ITIMER_REAL timer ticking every 10 ms interrupts a compute loop (no
 * syscalls in it) 20 times; the handler counts ticks, the loop counts
 * iterations and evolves a state. The iteration count and the state differ
 * at each run; a replay must reproduce them. */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>

#define TICKS 20

static volatile int ticks;
static volatile unsigned long at_tick[TICKS + 2];
static volatile unsigned long iterations;

static void on_alarm(int sig) {
    (void)sig;
    if (ticks < TICKS + 2)
        at_tick[ticks] = iterations;
    ticks++;
}

int main(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGALRM, &sa, NULL);

    struct itimerval it = {{0, 10000}, {0, 10000}};
    if (setitimer(ITIMER_REAL, &it, NULL) != 0) {
        perror("setitimer");
        return 2;
    }
    unsigned long x = 88172645463325252UL;
    while (ticks < TICKS) {
        /* xorshift64: no syscall, no memory but the counters */
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        iterations++;
    }
    int seen = ticks;
    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &off, NULL);

    printf("ticks: %d\n", seen >= TICKS ? TICKS : seen);
    printf("iterations: %lu\n", iterations);
    printf("state: %016lx\n", x);
    int ok = 1;
    for (int i = 0; i < TICKS; i++) {
        printf("tick %2d at iteration %lu\n", i + 1, at_tick[i]);
        if (i > 0 && at_tick[i] < at_tick[i - 1])
            ok = 0;
    }
    printf("%s\n", ok && seen >= TICKS ? "ALL OK" : "FAIL: ticks out of order");
    return ok ? 0 : 1;
}
