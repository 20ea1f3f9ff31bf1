/* vfork: a child that execs /bin/echo (the parent resumes when the exec
 * succeeds), a child that _exits without exec, and a child whose exec fails
 * (ENOENT) and reports it in its exit code. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static int failures;

static void check(int ok, const char *what) {
    if (!ok) {
        printf("FAIL: %s\n", what);
        failures++;
    }
}

static int reap(pid_t p, const char *label) {
    int st;
    pid_t w = waitpid(p, &st, 0);
    check(w == p, "waitpid returned the child");
    printf("%s: exited=%d code=%d\n", label, WIFEXITED(st), WEXITSTATUS(st));
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int main(void) {
    pid_t parent = getpid();
    printf("parent: before vfork\n");
    fflush(stdout);

    char *argv[] = {"echo", "hello from /bin/echo after vfork", NULL};
    pid_t p = vfork();
    if (p < 0) {
        perror("vfork");
        return 2;
    }
    if (p == 0) {
        execve("/bin/echo", argv, environ);
        _exit(127);
    }
    check(p != parent, "vfork returned a new pid");
    check(reap(p, "echo child") == 0, "echo exited 0");

    /* The child shares our memory until it exits: its store is visible. */
    volatile int shared = 0;
    p = vfork();
    if (p == 0) {
        shared = 42;
        _exit(getppid() == parent ? 7 : 100);
    }
    check(reap(p, "plain child") == 7, "plain child exit code");
    printf("store by the vfork child seen by the parent: %d\n", shared);
    check(shared == 42, "vfork child shares memory");

    char *bad[] = {"nonexistent", NULL};
    p = vfork();
    if (p == 0) {
        execve("/nonexistent/program", bad, environ);
        _exit(errno == ENOENT ? 3 : 4);
    }
    check(reap(p, "failed exec child") == 3, "failed execve gives ENOENT");

    printf("%s\n", failures ? "FAILED" : "ALL OK");
    return failures ? 1 : 0;
}
