/* Prints "pid N", then starts and joins 150 threads one after another,
 * each making a few calls the preload library buffers (its first makes
 * the thread's buffer), while another process sends it SIGUSR1 as fast as
 * it can (a test does): signals come while rrpipe sets up each thread's
 * buffer with syscalls of its own in the thread, while the main thread
 * waits in a join (a signal for the process may wake it and then be taken
 * by another thread), and inside clones. Prints how many threads ran. */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static volatile sig_atomic_t handled;

static void on_usr1(int sig) {
    (void)sig;
    handled = 1;
}

static void *work(void *arg) {
    struct stat st;
    long n = (long)getppid();
    if (stat("/", &st) == 0)
        n += (long)st.st_ino;
    n += (long)getpid();
    return (void *)n;
}

int main(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGUSR1, &sa, NULL);
    printf("pid %d\n", getpid());
    fflush(stdout);
    int ran = 0;
    for (int i = 0; i < 150; i++) {
        pthread_t t;
        void *r;
        if (pthread_create(&t, NULL, work, NULL) != 0 || pthread_join(t, &r) != 0) {
            perror("thread");
            return 2;
        }
        ran += r != NULL;
    }
    printf("%d threads ran\n", ran);
    return 0;
}
