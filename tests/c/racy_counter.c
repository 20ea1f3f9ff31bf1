/* Eight threads increment one shared counter without any lock: the
 * load/add/store sequences race, so the final total differs between native
 * runs (and between recordings), but a replay must print the recorded one. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>

#define NTHREADS 8
#define ITERS 2000000L

static volatile long counter;

static void *worker(void *arg) {
    (void)arg;
    for (long i = 0; i < ITERS; i++)
        counter++; /* not atomic: a load, an add and a store */
    return NULL;
}

int main(void) {
    pthread_t th[NTHREADS];
    for (int i = 0; i < NTHREADS; i++)
        if (pthread_create(&th[i], NULL, worker, NULL) != 0) {
            printf("FAIL: pthread_create\n");
            return 2;
        }
    for (int i = 0; i < NTHREADS; i++)
        pthread_join(th[i], NULL);
    long total = counter;
    printf("total: %ld of %ld\n", total, NTHREADS * ITERS);
    printf("lost updates: %ld\n", NTHREADS * ITERS - total);
    int ok = total > 0 && total <= NTHREADS * ITERS;
    printf("%s\n", ok ? "ALL OK" : "FAIL: total out of range");
    return ok ? 0 : 1;
}
