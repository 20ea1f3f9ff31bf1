/* Parent and forked children make buffered calls: each child's buffer
 * and wrapper stack must be its own (with buffering, rrpipe shares the
 * parent's buffer mapping with itself, and a child that inherited it gets
 * a private one before its first instruction). The parent waits for each
 * child in a read from a pipe, inside the library's wrapper, on its
 * private stack, while the child makes its calls; then each side reads
 * back its own file and checks the bytes.
 *
 * Usage: fork_buffered DIR */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static int check(const char *path, const char *want, int rounds) {
    char buf[64];
    for (int i = 0; i < rounds; i++) {
        int fd = open(path, O_RDONLY);
        if (fd < 0)
            return 0;
        ssize_t n = read(fd, buf, sizeof buf);
        close(fd);
        if (n != (ssize_t)strlen(want) || memcmp(buf, want, n) != 0)
            return 0;
    }
    return 1;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    char a[4096], b[4096];
    snprintf(a, sizeof a, "%s/a", argv[1]);
    snprintf(b, sizeof b, "%s/b", argv[1]);
    const char *ca = "the child's file\n", *cb = "the parent's own file\n";
    FILE *f = fopen(a, "w");
    fputs(ca, f);
    fclose(f);
    f = fopen(b, "w");
    fputs(cb, f);
    fclose(f);
    int children_ok = 0, parent_ok = 0;
    const int forks = 20;
    for (int k = 0; k < forks; k++) {
        int pipe_fds[2];
        if (pipe(pipe_fds) != 0) {
            perror("pipe");
            return 1;
        }
        pid_t p = fork();
        if (p < 0) {
            perror("fork");
            return 1;
        }
        if (p == 0) {
            int ok = check(a, ca, 100);
            ok &= write(pipe_fds[1], "x", 1) == 1;
            _exit(ok ? 0 : 1);
        }
        char c = 0;
        int woke = read(pipe_fds[0], &c, 1) == 1 && c == 'x';
        close(pipe_fds[0]);
        close(pipe_fds[1]);
        parent_ok += woke && check(b, cb, 100);
        int status = 0;
        waitpid(p, &status, 0);
        children_ok += WIFEXITED(status) && WEXITSTATUS(status) == 0;
    }
    printf("forks: %d, children ok: %d, parent ok: %d\n", forks, children_ok, parent_ok);
    printf(children_ok == forks && parent_ok == forks ? "ALL OK\n" : "FAILED\n");
    return children_ok == forks && parent_ok == forks ? 0 : 1;
}
