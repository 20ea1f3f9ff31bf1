/* clock_gettime, gettimeofday, time: the vDSO paths. Values printed raw:
 * replay must print the recorded ones. */
#define _GNU_SOURCE
#include <stdio.h>
#include <sys/time.h>
#include <time.h>

static int failures;

static void check(int ok, const char *what) {
    printf("%s: %s\n", what, ok ? "ok" : "FAIL");
    if (!ok) failures++;
}

int main(void) {
    const struct { clockid_t id; const char *name; } clocks[] = {
        {CLOCK_REALTIME, "REALTIME"},
        {CLOCK_MONOTONIC, "MONOTONIC"},
        {CLOCK_BOOTTIME, "BOOTTIME"},
        {CLOCK_MONOTONIC_COARSE, "MONOTONIC_COARSE"},
        {CLOCK_PROCESS_CPUTIME_ID, "PROCESS_CPUTIME"},
    };
    struct timespec prev[5] = {0};
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 5; i++) {
            struct timespec ts;
            int r = clock_gettime(clocks[i].id, &ts);
            printf("round %d %s: %d %ld.%09ld\n", round, clocks[i].name, r, (long)ts.tv_sec,
                   ts.tv_nsec);
            if (r != 0) check(0, "clock_gettime");
            if (round > 0 && clocks[i].id != CLOCK_REALTIME)
                check(ts.tv_sec > prev[i].tv_sec ||
                          (ts.tv_sec == prev[i].tv_sec && ts.tv_nsec >= prev[i].tv_nsec),
                      "clock does not go backwards");
            prev[i] = ts;
        }
        struct timeval tv;
        int r = gettimeofday(&tv, NULL);
        printf("round %d gettimeofday: %d %ld.%06ld\n", round, r, (long)tv.tv_sec, (long)tv.tv_usec);
        time_t t = time(NULL);
        time_t t2;
        time(&t2);
        printf("round %d time: %ld %ld\n", round, (long)t, (long)t2);
        check(t > 1500000000 && t2 >= t, "time is plausible");
        check(tv.tv_sec >= prev[0].tv_sec - 1, "gettimeofday agrees with REALTIME");
    }
    struct timespec res;
    clock_getres(CLOCK_MONOTONIC, &res);
    printf("resolution: %ld.%09ld\n", (long)res.tv_sec, res.tv_nsec);
    printf("%s\n", failures ? "FAILED" : "ALL OK");
    return failures != 0;
}
