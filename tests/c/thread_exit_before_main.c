/* The main thread calls pthread_exit while another thread keeps running:
 * the process lives on (the main thread a zombie leader), the thread
 * prints after main is gone, then ends the process with exit(3). */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static volatile int main_leaving;
static pid_t main_tid;

static void *worker(void *arg) {
    (void)arg;
    struct timespec ts = {0, 5 * 1000 * 1000};
    while (!main_leaving)
        nanosleep(&ts, NULL);
    /* Wait (up to 2 s) for the main thread to be gone: a zombie leader. */
    char path[64];
    snprintf(path, sizeof path, "/proc/self/task/%d/stat", main_tid);
    char state = '?';
    ts.tv_nsec = 2 * 1000 * 1000;
    for (int i = 0; i < 1000 && state != 'Z'; i++) {
        char line[256];
        FILE *f = fopen(path, "r");
        if (f && fgets(line, sizeof line, f)) {
            char *p = line;
            while (*p && *p != ')')
                p++;
            state = p[0] && p[1] ? p[2] : '?';
        }
        if (f)
            fclose(f);
        if (state != 'Z')
            nanosleep(&ts, NULL);
    }
    printf("worker: still running after main called pthread_exit\n");
    printf("worker: main thread state: %c\n", state);
    printf("worker: getpid()==main tid: %s, gettid()!=getpid(): %s\n",
           getpid() == main_tid ? "yes" : "no", gettid() != getpid() ? "yes" : "no");
    printf("worker: exiting with 3\n");
    fflush(stdout);
    exit(3);
}

int main(void) {
    main_tid = gettid();
    pthread_t th;
    if (pthread_create(&th, NULL, worker, NULL) != 0) {
        printf("FAIL: pthread_create\n");
        return 2;
    }
    printf("main: calling pthread_exit\n");
    fflush(stdout);
    main_leaving = 1;
    pthread_exit(NULL);
}
