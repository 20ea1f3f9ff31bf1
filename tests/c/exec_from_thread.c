/* A non-main thread calls execve(/bin/echo): the kernel kills the other
 * threads (the main thread, blocked in pthread_join), the exec'ing thread
 * takes over the thread-group id, and echo's output and status are the
 * process's. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>

extern char **environ;

static void *worker(void *arg) {
    (void)arg;
    printf("worker: calling execve from a non-main thread (tid!=pid: %s)\n",
           gettid() != getpid() ? "yes" : "no");
    fflush(stdout);
    char *argv[] = {"echo", "echo ran, exec'd from a thread", NULL};
    execve("/bin/echo", argv, environ);
    perror("execve");
    return NULL;
}

int main(void) {
    printf("main: starting the worker\n");
    fflush(stdout);
    pthread_t th;
    if (pthread_create(&th, NULL, worker, NULL) != 0) {
        printf("FAIL: pthread_create\n");
        return 2;
    }
    pthread_join(th, NULL);
    /* Only reached when execve failed. */
    printf("FAIL: main thread survived the exec\n");
    return 1;
}
