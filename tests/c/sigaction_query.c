/* Asks for the disposition of every signal with sigaction(sig, NULL, &old),
 * as Python does at start-up (the preload library buffers these queries),
 * after installing a handler for SIGUSR1 (with a mask and flags) and
 * ignoring SIGUSR2. Prints what it learns, whether the bytes of sa_mask
 * past the kernel's 8 were overwritten (libc copies a whole sigset_t of
 * its own), and the errors for signal 0, glibc's internal 32 and 33, and
 * 65. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

static void on_usr1(int sig) { (void)sig; }

int main(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sa.sa_flags = SA_RESTART | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    sigaddset(&sa.sa_mask, SIGTERM);
    if (sigaction(SIGUSR1, &sa, NULL) != 0) return 2;
    signal(SIGUSR2, SIG_IGN);

    unsigned long mine = 0, ignored = 0, defaults = 0;
    for (int sig = 0; sig <= 65; sig++) {
        struct sigaction old;
        memset(&old, 0xAA, sizeof old);
        errno = 0;
        int r = sigaction(sig, NULL, &old);
        if (r != 0) {
            printf("%d: %d errno %d\n", sig, r, errno);
            continue;
        }
        const unsigned char *m = (const unsigned char *)&old.sa_mask;
        int tail_kept = 1;
        for (size_t i = 8; i < sizeof old.sa_mask; i++)
            tail_kept &= m[i] == 0xAA;
        if (old.sa_handler == on_usr1) {
            mine++;
            printf("%d: mine, flags %#x, SIGTERM masked %d, restorer set %d, tail kept %d\n",
                   sig, old.sa_flags, sigismember(&old.sa_mask, SIGTERM),
                   old.sa_restorer != NULL, tail_kept);
        } else if (old.sa_handler == SIG_IGN) {
            ignored++;
            printf("%d: ignored, tail kept %d\n", sig, tail_kept);
        } else if (old.sa_handler == SIG_DFL) {
            defaults++;
        } else {
            printf("%d: other handler\n", sig);
        }
    }
    errno = 0;
    printf("query without oact: %d errno %d\n", sigaction(SIGINT, NULL, NULL), errno);
    printf("handlers: mine %lu, ignored %lu, default %lu\n", mine, ignored, defaults);
    return 0;
}
