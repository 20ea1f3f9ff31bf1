/* A small program whose output differs at every run and is the same at
 * every replay of one recording: time, randomness, the time-stamp counter
 * and its own addresses.
 *
 *     gcc -O1 -o /tmp/clock_race examples/clock_race.c
 *     rrpipe record /tmp/clock_race && rrpipe replay && rrpipe replay
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/random.h>
#include <time.h>
#include <x86intrin.h>

int main(void) {
    struct timespec ts;
    unsigned int seed;
    clock_gettime(CLOCK_REALTIME, &ts);
    getrandom(&seed, sizeof seed, 0);
    srand(seed);
    char *heap = malloc(100);
    printf("time %ld.%09ld random %d tsc %llu heap %p\n", (long)ts.tv_sec,
           ts.tv_nsec, rand(), (unsigned long long)__rdtsc(), (void *)heap);
    free(heap);
    return 0;
}
