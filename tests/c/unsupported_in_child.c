/* The parent prints a line, forks and waits; the child prints a line, then
 * makes a syscall no tracer supports (kexec_file_load with invalid flags:
 * EINVAL or EPERM natively), then prints another line. rrpipe must stop
 * recording at the child's syscall (exit 81, naming it); the partial trace
 * replays both first lines. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

int main(void) {
    printf("parent: before fork\n");
    fflush(stdout);
    pid_t p = fork();
    if (p < 0) {
        perror("fork");
        return 2;
    }
    if (p == 0) {
        printf("child: before the unsupported syscall\n");
        fflush(stdout);
        errno = 0;
        long r = syscall(SYS_kexec_file_load, -1, -1, 0UL, NULL, 0x80000000UL);
        printf("child: after: kexec_file_load -> %ld errno=%d (%s)\n", r, errno,
               strerror(errno));
        fflush(stdout);
        _exit(0);
    }
    int st;
    waitpid(p, &st, 0);
    printf("parent: child exited=%d code=%d\n", WIFEXITED(st), WEXITSTATUS(st));
    return 0;
}
