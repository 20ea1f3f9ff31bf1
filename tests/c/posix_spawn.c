/* posix_spawn (glibc: clone(CLONE_VM|CLONE_VFORK) + exec): /bin/echo
 * writing to our stdout, then posix_spawnp of echo with its stdout
 * redirected into a pipe that the parent reads, then a spawn that fails. */
#define _GNU_SOURCE
#include <errno.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
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

int main(void) {
    printf("parent: before posix_spawn\n");
    fflush(stdout);

    pid_t pid;
    char *argv1[] = {"echo", "hello from posix_spawn", NULL};
    int r = posix_spawn(&pid, "/bin/echo", NULL, NULL, argv1, environ);
    check(r == 0, "posix_spawn /bin/echo");
    int st = 0;
    check(waitpid(pid, &st, 0) == pid, "waitpid the spawned echo");
    printf("spawned echo: exited=%d code=%d\n", WIFEXITED(st), WEXITSTATUS(st));

    int fds[2];
    check(pipe(fds) == 0, "pipe");
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
    posix_spawn_file_actions_addclose(&fa, fds[0]);
    posix_spawn_file_actions_addclose(&fa, fds[1]);
    char *argv2[] = {"echo", "through a pipe", NULL};
    r = posix_spawnp(&pid, "echo", &fa, NULL, argv2, environ);
    check(r == 0, "posix_spawnp echo");
    posix_spawn_file_actions_destroy(&fa);
    close(fds[1]);
    char buf[256];
    size_t got = 0;
    ssize_t n;
    while ((n = read(fds[0], buf + got, sizeof buf - 1 - got)) > 0)
        got += (size_t)n;
    buf[got] = 0;
    close(fds[0]);
    check(waitpid(pid, &st, 0) == pid, "waitpid the piped echo");
    printf("parent read %zu bytes: %s", got, buf);
    printf("piped echo: exited=%d code=%d\n", WIFEXITED(st), WEXITSTATUS(st));
    check(strcmp(buf, "through a pipe\n") == 0, "pipe contents");

    char *argv3[] = {"nope", NULL};
    r = posix_spawn(&pid, "/nonexistent/program", NULL, NULL, argv3, environ);
    printf("spawn of a missing program -> %s\n", r == ENOENT ? "ENOENT" : strerror(r));
    if (r == 0)
        waitpid(pid, &st, 0);
    check(r == ENOENT, "posix_spawn of a missing program gives ENOENT");

    printf("%s\n", failures ? "FAILED" : "ALL OK");
    return failures ? 1 : 0;
}
