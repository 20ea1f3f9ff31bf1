/* sbrk/brk and many malloc/free sizes; print sums and heap addresses. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int failures;

static void check(int ok, const char *what) {
    printf("%s: %s\n", what, ok ? "ok" : "FAIL");
    if (!ok) failures++;
}

int main(void) {
    /* Before stdio or malloc touch the heap (no printing until the break
     * is back where malloc may then start from). */
    char *start = sbrk(0);
    char *grown = sbrk(10 * 4096);
    char *now = sbrk(0);
    memset(grown, 0x3c, 10 * 4096);
    unsigned long s = 0;
    for (int i = 0; i < 10 * 4096; i++) s += (unsigned char)grown[i];
    int shrink = brk(start + 4096);
    char *after = sbrk(0);
    check(grown == start, "sbrk returns the old break");
    check(now == start + 10 * 4096, "break moved");
    check(shrink == 0, "brk shrink");
    check(after == start + 4096, "break shrank");
    check(s == 10 * 4096 * 0x3cul, "sum of the grown heap");
    printf("break: start %p after sbrk %p after brk %p sum %lu\n", (void *)start, (void *)now,
           (void *)after, s);

    /* malloc: deterministic sizes from small to mmap-sized. */
    enum { N = 2000 };
    static void *ptrs[N];
    static size_t lens[N];
    uint32_t x = 7;
    uint64_t total = 0, sum = 0;
    for (int i = 0; i < N; i++) {
        x = x * 1664525u + 1013904223u;
        size_t len = (i % 100 == 99) ? 200000 + (x >> 16) : 1 + (x >> 20);
        ptrs[i] = malloc(len);
        lens[i] = len;
        if (!ptrs[i]) { check(0, "malloc"); return 1; }
        memset(ptrs[i], i & 0xff, len);
        total += len;
        if (i % 3 == 1) { free(ptrs[i - 1]); ptrs[i - 1] = NULL; }
    }
    for (int i = 0; i < N; i++)
        if (ptrs[i]) for (size_t j = 0; j < lens[i]; j += 64) sum += ((unsigned char *)ptrs[i])[j];
    printf("allocated %llu bytes, sum %llu\n", (unsigned long long)total, (unsigned long long)sum);
    for (int i = 0; i < 10; i++)
        printf("ptr[%d] = %p (%zu bytes)\n", i * 199, ptrs[i * 199], lens[i * 199]);
    printf("ptr[99] = %p (%zu bytes, mmapped)\n", ptrs[99], lens[99]);
    for (int i = 0; i < N; i++) free(ptrs[i]);

    /* calloc and realloc growth. */
    int *v = calloc(16, sizeof *v);
    int zero = 1;
    for (int i = 0; i < 16; i++) zero &= v[i] == 0;
    check(zero, "calloc zeroes");
    for (int n = 16; n <= 1 << 18; n *= 2) {
        v = realloc(v, n * sizeof *v);
        for (int i = n / 2; i < n; i++) v[i] = i;
    }
    long long vs = 0;
    for (int i = 0; i < 1 << 18; i++) vs += v[i];
    printf("realloc'd to %p sum %lld\n", (void *)v, vs);
    free(v);
    printf("final break %p\n", sbrk(0));
    printf("%s\n", failures ? "FAILED" : "ALL OK");
    return failures != 0;
}
