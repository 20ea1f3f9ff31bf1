/* A child exits 20 ms in; the parent sleeps 100 ms (its SIGCHLD handler
 * runs meanwhile, interrupting nanosleep, which is resumed with the time
 * left), checks that the child is a zombie, then reaps it with waitpid. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t sigchld_count;

static void on_sigchld(int sig) {
    (void)sig;
    sigchld_count++;
}

static char proc_state(pid_t pid) {
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    char state = '?';
    if (f && fgets(line, sizeof line, f)) {
        char *p = strrchr(line, ')');
        if (p && p[1])
            state = p[2];
    }
    if (f)
        fclose(f);
    return state;
}

int main(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigchld;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGCHLD, &sa, NULL);

    printf("parent: forking\n");
    fflush(stdout);
    pid_t p = fork();
    if (p < 0) {
        perror("fork");
        return 2;
    }
    if (p == 0) {
        /* Exit 20 ms in, while the parent sleeps. */
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
        _exit(5);
    }

    struct timespec left = {0, 100 * 1000 * 1000};
    int interrupted = 0;
    while (nanosleep(&left, &left) != 0) {
        if (errno != EINTR) {
            perror("nanosleep");
            return 2;
        }
        interrupted++;
    }
    /* The child has surely exited by now; should the machine be very slow,
     * wait (without reaping) until it has. */
    siginfo_t info;
    memset(&info, 0, sizeof info);
    int r = waitid(P_PID, p, &info, WEXITED | WNOWAIT);
    printf("waitid(WNOWAIT) -> %d, si_pid==child: %s, si_code=CLD_EXITED: %s, si_status=%d\n", r,
           info.si_pid == p ? "yes" : "no", info.si_code == CLD_EXITED ? "yes" : "no",
           info.si_status);
    printf("child state before reaping: %c\n", proc_state(p));
    printf("SIGCHLD handled: %d, nanosleep interrupted: %s\n", (int)sigchld_count,
           interrupted ? "yes" : "no");

    int st;
    pid_t w = waitpid(p, &st, 0);
    printf("waitpid -> child: %s, exited=%d code=%d\n", w == p ? "yes" : "no", WIFEXITED(st),
           WEXITSTATUS(st));
    printf("child state after reaping: %c\n", proc_state(p));
    int ok = r == 0 && w == p && WIFEXITED(st) && WEXITSTATUS(st) == 5 && sigchld_count == 1;
    printf("%s\n", ok ? "ALL OK" : "FAIL: unexpected result");
    return ok ? 0 : 1;
}
