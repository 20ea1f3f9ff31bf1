/* SIGUSR1 sent to ourselves four ways, caught by an SA_SIGINFO handler that
 * records si_code, si_pid and si_value: raise() (tgkill: SI_TKILL),
 * kill(getpid()) (SI_USER), sigqueue (SI_QUEUE with a value), and a
 * kill while the signal is blocked, delivered when sigprocmask unblocks it.
 * Each is handled before the call that sent it returns (or unblocks). */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static volatile int count;
static volatile int code, signo, value;
static volatile pid_t sender;
static volatile long handler_ran_at;
static volatile long progress;

static void on_usr1(int sig, siginfo_t *si, void *ctx) {
    (void)sig;
    (void)ctx;
    count++;
    signo = si->si_signo;
    code = si->si_code;
    sender = si->si_pid;
    value = si->si_code == SI_QUEUE ? si->si_value.sival_int : -1;
    handler_ran_at = progress;
}

static const char *code_name(int c) {
    switch (c) {
    case SI_USER:
        return "SI_USER";
    case SI_TKILL:
        return "SI_TKILL";
    case SI_QUEUE:
        return "SI_QUEUE";
    default:
        return "other";
    }
}

static int failures;

static void report(const char *how, int want_code, int want_value, long want_at) {
    pid_t me = getpid();
    printf("%s: handled %d time(s), si_signo=%s, si_code=%s, si_pid==getpid(): %s, value=%d, "
           "handled before the next step: %s\n",
           how, count, signo == SIGUSR1 ? "SIGUSR1" : "other", code_name(code),
           sender == me ? "yes" : "no", value, handler_ran_at == want_at ? "yes" : "no");
    if (signo != SIGUSR1 || code != want_code || sender != me || value != want_value ||
        handler_ran_at != want_at) {
        printf("FAIL: %s\n", how);
        failures++;
    }
}

int main(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_usr1;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR1, &sa, NULL);

    progress = 1;
    raise(SIGUSR1);
    progress = 2;
    report("raise", SI_TKILL, -1, 1);

    kill(getpid(), SIGUSR1);
    progress = 3;
    report("kill(getpid())", SI_USER, -1, 2);

    union sigval v = {.sival_int = 1234};
    sigqueue(getpid(), SIGUSR1, v);
    progress = 4;
    report("sigqueue", SI_QUEUE, 1234, 3);

    sigset_t set, old;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    sigprocmask(SIG_BLOCK, &set, &old);
    kill(getpid(), SIGUSR1);
    progress = 5;
    sigset_t pending;
    sigpending(&pending);
    printf("blocked: pending=%s, handled so far %d\n",
           sigismember(&pending, SIGUSR1) ? "yes" : "no", count);
    failures += !sigismember(&pending, SIGUSR1) || count != 3;
    sigprocmask(SIG_SETMASK, &old, NULL);
    progress = 6;
    report("kill while blocked, then unblocked", SI_USER, -1, 5);

    printf("%s\n", failures ? "FAILED" : "ALL OK");
    return failures ? 1 : 0;
}
