/* Prints a line, then makes a syscall no tracer supports (kexec_file_load,
 * with invalid flags so that it is harmless when run natively: EINVAL or
 * EPERM), then prints another line. rrpipe must stop recording at the
 * syscall (exit 81, naming it); the partial trace replays the first line. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(void) {
    printf("before the unsupported syscall\n");
    fflush(stdout);
    errno = 0;
    long r = syscall(SYS_kexec_file_load, -1, -1, 0UL, NULL, 0x80000000UL);
    printf("after: kexec_file_load -> %ld errno=%d (%s)\n", r, errno, strerror(errno));
    return 0;
}
