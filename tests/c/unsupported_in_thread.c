/* Like unsupported_in_child, from a second thread: the main thread prints,
 * starts a thread and joins it; the thread prints, then calls
 * kexec_file_load (invalid flags). rrpipe must stop recording there
 * (exit 81, naming it); the partial trace replays both first lines. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static void *worker(void *arg) {
    (void)arg;
    printf("thread: before the unsupported syscall\n");
    fflush(stdout);
    errno = 0;
    long r = syscall(SYS_kexec_file_load, -1, -1, 0UL, NULL, 0x80000000UL);
    printf("thread: after: kexec_file_load -> %ld errno=%d (%s)\n", r, errno, strerror(errno));
    fflush(stdout);
    return NULL;
}

int main(void) {
    printf("main: before pthread_create\n");
    fflush(stdout);
    pthread_t th;
    if (pthread_create(&th, NULL, worker, NULL) != 0) {
        printf("FAIL: pthread_create\n");
        return 2;
    }
    pthread_join(th, NULL);
    printf("main: joined\n");
    return 0;
}
