/* The main thread spins on a volatile flag that a second thread sets after
 * a computation; neither makes a syscall meanwhile, so when threads are
 * serialised the spinning one must be preempted without one. The result
 * is deterministic; the spin count is not, and must replay identically. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>

#define ROUNDS 30000000UL

static volatile int flag;
static volatile unsigned long result;

static void *worker(void *arg) {
    (void)arg;
    unsigned long x = 1;
    for (unsigned long i = 0; i < ROUNDS; i++)
        x = x * 6364136223846793005UL + 1442695040888963407UL;
    result = x;
    flag = 1;
    return NULL;
}

int main(void) {
    pthread_t th;
    printf("main: starting the worker, then spinning\n");
    fflush(stdout);
    if (pthread_create(&th, NULL, worker, NULL) != 0) {
        printf("FAIL: pthread_create\n");
        return 2;
    }
    unsigned long spins = 0;
    while (!flag)
        spins++;
    unsigned long r = result;
    pthread_join(th, NULL);
    printf("result: %016lx\n", r);
    printf("spins: %lu\n", spins);
    unsigned long x = 1;
    for (unsigned long i = 0; i < ROUNDS; i++)
        x = x * 6364136223846793005UL + 1442695040888963407UL;
    printf("%s\n", x == r ? "ALL OK" : "FAIL: wrong result");
    return x == r ? 0 : 1;
}
