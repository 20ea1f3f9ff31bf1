/* rdtsc and rdtscp: replay must return the recorded counter values. */
#include <stdint.h>
#include <stdio.h>
#include <x86intrin.h>

int main(void) {
    uint64_t v[8];
    unsigned aux[4];
    for (int i = 0; i < 4; i++) v[i] = __rdtsc();
    for (int i = 0; i < 4; i++) v[4 + i] = __rdtscp(&aux[i]);
    int failures = 0;
    for (int i = 0; i < 8; i++) {
        printf("tsc[%d] = %llu", i, (unsigned long long)v[i]);
        if (i > 0) printf(" (+%lld)", (long long)(v[i] - v[i - 1]));
        if (i >= 4) printf(" aux=%u", aux[i - 4]);
        printf("\n");
        if (i > 0 && v[i] < v[i - 1]) failures++;
    }
    printf("monotonic: %s\n", failures ? "FAIL" : "ok");
    printf("%s\n", failures ? "FAILED" : "ALL OK");
    return failures != 0;
}
