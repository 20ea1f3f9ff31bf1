/* fork: one child that prints (the parent waits for it), then five children
 * at once, each exiting with a distinct code after checking getppid() and
 * getpid(), and one more killed by SIGTERM. The parent reaps them with
 * waitpid(-1) in whatever order they finish and prints the statuses in
 * fork order, so the output is deterministic. */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#define N 5

static int failures;

static void check(int ok, const char *what) {
    if (!ok) {
        printf("FAIL: %s\n", what);
        failures++;
    }
}

int main(void) {
    pid_t parent = getpid();
    printf("parent: forking a child that prints\n");
    fflush(stdout);

    pid_t first = fork();
    if (first < 0) {
        perror("fork");
        return 2;
    }
    if (first == 0) {
        int ok = getppid() == parent && getpid() != parent;
        printf("child 0: getppid()==parent: %s, getpid()!=parent: %s\n",
               getppid() == parent ? "yes" : "no", getpid() != parent ? "yes" : "no");
        fflush(stdout);
        _exit(ok ? 0 : 100);
    }
    int st;
    pid_t w = waitpid(first, &st, 0);
    check(w == first, "waitpid returned the first child's pid");
    printf("child 0: exited=%d code=%d\n", WIFEXITED(st), WEXITSTATUS(st));

    pid_t pids[N + 1];
    for (int i = 0; i < N; i++) {
        fflush(stdout);
        pid_t p = fork();
        if (p < 0) {
            perror("fork");
            return 2;
        }
        if (p == 0) {
            /* Distinct codes, and a sign the relations held. */
            int ok = getppid() == parent && getpid() != parent && getpid() != first;
            /* A little work, so that the children overlap. */
            volatile unsigned long x = 0;
            for (unsigned long k = 0; k < 100000UL * (N - i); k++)
                x += k;
            _exit(ok ? 10 + i : 100 + i);
        }
        check(p != parent && p != first, "fork returned a new pid");
        pids[i] = p;
    }
    /* One more, killed by a signal. */
    pid_t victim = fork();
    if (victim == 0) {
        kill(getpid(), SIGTERM);
        _exit(99);
    }
    pids[N] = victim;

    int statuses[N + 1];
    int seen[N + 1] = {0};
    for (int n = 0; n < N + 1; n++) {
        pid_t r = waitpid(-1, &st, 0);
        int idx = -1;
        for (int i = 0; i < N + 1; i++)
            if (pids[i] == r)
                idx = i;
        if (idx < 0 || seen[idx]) {
            printf("FAIL: waitpid(-1) returned unexpected pid %d\n", r);
            failures++;
            continue;
        }
        seen[idx] = 1;
        statuses[idx] = st;
    }
    for (int i = 0; i < N; i++) {
        if (!seen[i])
            continue;
        st = statuses[i];
        printf("child %d: exited=%d code=%d (expected %d)\n", i + 1, WIFEXITED(st),
               WEXITSTATUS(st), 10 + i);
        check(WIFEXITED(st) && WEXITSTATUS(st) == 10 + i, "child exit code");
    }
    if (seen[N]) {
        st = statuses[N];
        printf("victim: signaled=%d sig=%d\n", WIFSIGNALED(st), WIFSIGNALED(st) ? WTERMSIG(st) : 0);
        check(WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM, "victim killed by SIGTERM");
    }
    pid_t none = waitpid(-1, &st, WNOHANG);
    printf("waitpid with no children left -> %d\n", none);
    check(none == -1, "no children left");
    printf("%s\n", failures ? "FAILED" : "ALL OK");
    return failures ? 1 : 0;
}
