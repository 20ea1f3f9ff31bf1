/* A thread blocks in read() on a pipe whose writer is another thread of
 * the same process (issue 5: a buffered read that blocks must not freeze
 * the serialized schedule).
 *
 * Phase 1: the main thread reads from a pipe; the writer thread sleeps
 * 20 ms before each of its messages, so the reader is already blocked in
 * read() when each one arrives. Phase 2: ping-pong over two pipes, each
 * thread blocked in read() in turn, 50 rounds. Prints only what does not
 * depend on timing: the bytes read, the rounds completed, and whether the
 * first read waited for the writer. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MESSAGES 6
#define ROUNDS 50

static int data[2];     /* writer thread -> main */
static int ping[2];     /* main -> writer thread */
static int pong[2];     /* writer thread -> main */

static ssize_t read_full(int fd, void *buf, size_t n) {
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, (char *)buf + got, n - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return r;
        got += (size_t)r;
    }
    return (ssize_t)got;
}

static void *writer(void *arg) {
    (void)arg;
    for (int i = 0; i < MESSAGES; i++) {
        usleep(20 * 1000);
        char msg[64];
        int n = snprintf(msg, sizeof msg, "message %d from the writer thread\n", i);
        if (write(data[1], msg, (size_t)n) != n) {
            perror("writer: write");
            return (void *)1;
        }
    }
    close(data[1]);
    /* Phase 2: answer each ping with the number plus one. */
    for (int i = 0; i < ROUNDS; i++) {
        int v;
        if (read_full(ping[0], &v, sizeof v) != sizeof v) {
            perror("writer: read ping");
            return (void *)1;
        }
        v++;
        if (write(pong[1], &v, sizeof v) != sizeof v) {
            perror("writer: write pong");
            return (void *)1;
        }
    }
    return NULL;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(void) {
    if (pipe(data) || pipe(ping) || pipe(pong)) {
        perror("pipe");
        return 1;
    }
    pthread_t t;
    double start = now();
    if (pthread_create(&t, NULL, writer, NULL)) {
        perror("pthread_create");
        return 1;
    }

    char all[1024];
    size_t total = 0;
    int reads = 0;
    double first_read_done = 0;
    for (;;) {
        ssize_t n = read(data[0], all + total, sizeof all - total);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            perror("main: read");
            return 1;
        }
        if (reads++ == 0) first_read_done = now();
        if (n == 0) break;
        total += (size_t)n;
    }
    /* The writer slept 20 ms before its first message: the first read
     * blocked (natively and under rrpipe) for at least most of that. */
    printf("first read waited for the writer: %s\n",
           first_read_done - start >= 0.010 ? "yes" : "no");
    printf("read %zu bytes:\n%.*s", total, (int)total, all);

    int rounds = 0, wrong = 0;
    for (int i = 0; i < ROUNDS; i++) {
        int v = 1000 + i;
        if (write(ping[1], &v, sizeof v) != sizeof v) {
            perror("main: write ping");
            return 1;
        }
        int back;
        if (read_full(pong[0], &back, sizeof back) != sizeof back) {
            perror("main: read pong");
            return 1;
        }
        if (back != v + 1) wrong++;
        rounds++;
    }
    void *ret;
    pthread_join(t, &ret);
    printf("ping-pong: %d rounds, %d wrong answers\n", rounds, wrong);
    printf("writer thread returned %ld\n", (long)ret);
    if (wrong || ret || total == 0) printf("FAIL\n");
    else printf("ALL OK\n");
    return 0;
}
