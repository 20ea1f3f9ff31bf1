/* Integer division by zero (and INT_MIN / -1) raise SIGFPE; the handler
 * recovers with siglongjmp, several times, noting si_code. */
#define _GNU_SOURCE
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

static sigjmp_buf env;
static volatile int traps;
static volatile int last_code;

static void on_fpe(int sig, siginfo_t *si, void *ctx) {
    (void)sig;
    (void)ctx;
    traps++;
    last_code = si->si_code;
    siglongjmp(env, 1);
}

static volatile int zero = 0, minus_one = -1, int_min = INT_MIN;
static volatile long lzero = 0;

int main(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_fpe;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGFPE, &sa, NULL);

    static int failures; /* static: survives siglongjmp */
    volatile long sink = 0;
    for (int i = 0; i < 6; i++) {
        if (sigsetjmp(env, 1) == 0) {
            switch (i % 3) {
            case 0:
                sink = (100 + i) / zero;
                break;
            case 1:
                sink = (1000L + i) % lzero;
                break;
            default:
                sink = int_min / minus_one;
                break;
            }
            printf("FAIL: case %d did not trap (%ld)\n", i, (long)sink);
            failures++;
        } else {
            printf("case %d: SIGFPE #%d recovered, si_code %s\n", i, traps,
                   last_code == FPE_INTDIV ? "FPE_INTDIV" : "other");
            failures += last_code != FPE_INTDIV;
        }
    }
    /* Still fine afterwards. */
    sink = 84 / (zero + 2);
    printf("84 / 2 = %ld, traps: %d\n", (long)sink, traps);
    failures += sink != 42 || traps != 6;
    printf("%s\n", failures ? "FAILED" : "ALL OK");
    return failures ? 1 : 0;
}
