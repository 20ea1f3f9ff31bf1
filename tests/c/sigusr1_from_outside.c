/* Prints its pid, then sleeps in 10 ms nanosleeps (up to 10 s) until a
 * SIGUSR1 from another process sets a flag; prints how many sleeps it took
 * and who sent the signal. Exit 0 when the signal came, 1 on timeout. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t got;
static volatile pid_t sender;
static volatile int code;

static void on_usr1(int sig, siginfo_t *si, void *ctx) {
    (void)sig;
    (void)ctx;
    got = 1;
    sender = si->si_pid;
    code = si->si_code;
}

int main(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_usr1;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR1, &sa, NULL);

    /* The handler is in place before anyone can know the pid. */
    printf("pid %d\n", getpid());
    fflush(stdout);

    int sleeps = 0, interrupted = 0;
    while (!got && sleeps < 1000) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        if (nanosleep(&ts, NULL) != 0 && errno == EINTR)
            interrupted++;
        sleeps++;
    }
    if (!got) {
        printf("no SIGUSR1 after %d sleeps\n", sleeps);
        return 1;
    }
    printf("SIGUSR1 after %d sleeps (%d interrupted)\n", sleeps, interrupted);
    printf("si_code=%s, sender is another process: %s\n", code == SI_USER ? "SI_USER" : "other",
           sender != getpid() && sender > 0 ? "yes" : "no");
    printf("sender pid %d\n", (int)sender);
    return 0;
}
