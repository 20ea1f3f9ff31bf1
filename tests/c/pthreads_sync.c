/* Four threads synchronised with a mutex, a condition variable (a bounded
 * queue), a barrier and a rwlock. Whatever the interleaving, the printed
 * results are the same: deterministic output. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>

#define NTHREADS 4
#define ROUNDS 50
#define ITEMS 1000
#define QCAP 8

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static long mutex_sum;

/* Bounded queue: threads 0 and 1 produce, 2 and 3 consume. */
static pthread_mutex_t qmu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t not_full = PTHREAD_COND_INITIALIZER;
static pthread_cond_t not_empty = PTHREAD_COND_INITIALIZER;
static long queue[QCAP];
static int qhead, qlen;
static long consumed_sum[NTHREADS];
static int consumed_count[NTHREADS];

static pthread_barrier_t barrier;
static pthread_rwlock_t rw = PTHREAD_RWLOCK_INITIALIZER;
static long table[NTHREADS];
static long reader_checks;
static int reader_failures;

static void put(long v) {
    pthread_mutex_lock(&qmu);
    while (qlen == QCAP)
        pthread_cond_wait(&not_full, &qmu);
    queue[(qhead + qlen) % QCAP] = v;
    qlen++;
    pthread_cond_signal(&not_empty);
    pthread_mutex_unlock(&qmu);
}

static long get(void) {
    pthread_mutex_lock(&qmu);
    while (qlen == 0)
        pthread_cond_wait(&not_empty, &qmu);
    long v = queue[qhead];
    qhead = (qhead + 1) % QCAP;
    qlen--;
    pthread_cond_signal(&not_full);
    pthread_mutex_unlock(&qmu);
    return v;
}

static void *worker(void *arg) {
    int id = (int)(long)arg;

    /* 1. Mutex. */
    for (int i = 0; i < 10000; i++) {
        pthread_mutex_lock(&mu);
        mutex_sum += id + 1;
        pthread_mutex_unlock(&mu);
    }
    pthread_barrier_wait(&barrier);

    /* 2. Condition variables: producers 0,1 each put ITEMS values; consumers
     * 2,3 each take ITEMS values; -1 never appears. */
    if (id < 2) {
        for (int i = 0; i < ITEMS; i++)
            put((long)id * 100000 + i);
    } else {
        for (int i = 0; i < ITEMS; i++) {
            consumed_sum[id] += get();
            consumed_count[id]++;
        }
    }
    pthread_barrier_wait(&barrier);

    /* 3. Barrier rounds and a rwlock: in each round every thread writes its
     * table slot under the write lock, then all read the whole table under
     * the read lock after a barrier. */
    for (int r = 1; r <= ROUNDS; r++) {
        pthread_rwlock_wrlock(&rw);
        table[id] = (long)r * (id + 1);
        pthread_rwlock_unlock(&rw);
        pthread_barrier_wait(&barrier);
        pthread_rwlock_rdlock(&rw);
        long s = 0;
        for (int k = 0; k < NTHREADS; k++)
            s += table[k];
        pthread_rwlock_unlock(&rw);
        /* 1+2+3+4 = 10 */
        pthread_mutex_lock(&mu);
        reader_checks++;
        if (s != 10L * r)
            reader_failures++;
        pthread_mutex_unlock(&mu);
        pthread_barrier_wait(&barrier);
    }
    return (void *)(long)(id * 11);
}

int main(void) {
    pthread_t th[NTHREADS];
    pthread_barrier_init(&barrier, NULL, NTHREADS);
    for (long i = 0; i < NTHREADS; i++)
        if (pthread_create(&th[i], NULL, worker, (void *)i) != 0) {
            printf("FAIL: pthread_create\n");
            return 2;
        }
    int failures = 0;
    for (int i = 0; i < NTHREADS; i++) {
        void *ret;
        pthread_join(th[i], &ret);
        printf("thread %d returned %ld\n", i, (long)ret);
        if ((long)ret != i * 11)
            failures++;
    }
    printf("mutex sum: %ld (expected %ld)\n", mutex_sum, 10000L * (1 + 2 + 3 + 4));
    failures += mutex_sum != 10000L * 10;
    long total = consumed_sum[2] + consumed_sum[3];
    long expected = 0;
    for (int i = 0; i < ITEMS; i++)
        expected += i + (100000L + i);
    printf("queue: consumed %d items, sum %ld (expected %d, %ld)\n",
           consumed_count[2] + consumed_count[3], total, 2 * ITEMS, expected);
    failures += total != expected || consumed_count[2] + consumed_count[3] != 2 * ITEMS;
    printf("rwlock: %ld reader checks, %d wrong sums\n", reader_checks, reader_failures);
    failures += reader_checks != NTHREADS * ROUNDS || reader_failures != 0;
    pthread_barrier_destroy(&barrier);
    if (failures)
        printf("FAIL: %d checks failed\n", failures);
    printf("%s\n", failures ? "FAILED" : "ALL OK");
    return failures ? 1 : 0;
}
