/* Anonymous mappings: fill, checksum, print the addresses. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static int failures;

static void check(int ok, const char *what) {
    printf("%s: %s\n", what, ok ? "ok" : "FAIL");
    if (!ok) failures++;
}

static uint64_t fnv(const unsigned char *p, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) { h ^= p[i]; h *= 0x100000001b3ull; }
    return h;
}

int main(void) {
    const size_t sizes[] = {4096, 3 * 4096, 1 << 20, 8 << 20};
    unsigned char *maps[4];
    for (int i = 0; i < 4; i++) {
        maps[i] = mmap(NULL, sizes[i], PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        check(maps[i] != MAP_FAILED, "mmap anonymous");
        int zero = 1;
        for (size_t j = 0; j < sizes[i]; j += 512) zero &= maps[i][j] == 0;
        check(zero, "fresh mapping is zero");
        for (size_t j = 0; j < sizes[i]; j++) maps[i][j] = (unsigned char)(j * (i + 3) + (j >> 12));
        printf("map %d: %p size %zu checksum %016llx\n", i, (void *)maps[i], sizes[i],
               (unsigned long long)fnv(maps[i], sizes[i]));
    }

    /* MAP_FIXED over part of an existing mapping replaces it with zeros. */
    unsigned char *fixed = mmap(maps[2] + 4096, 4096, PROT_READ | PROT_WRITE,
                                MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    check(fixed == maps[2] + 4096, "MAP_FIXED at the requested address");
    check(fixed[0] == 0 && fixed[4095] == 0, "MAP_FIXED page is zero");
    printf("after MAP_FIXED: %016llx\n", (unsigned long long)fnv(maps[2], sizes[2]));

    /* A hint the kernel may honour. */
    void *hint = (void *)0x200000000000ull;
    unsigned char *h = mmap(hint, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    printf("hinted mapping at %p (hint %p)\n", (void *)h, hint);
    h[100] = 42;
    check(h[100] == 42, "hinted mapping writable");

    /* MAP_POPULATE and MAP_NORESERVE. */
    unsigned char *pop = mmap(NULL, 64 * 4096, PROT_READ | PROT_WRITE,
                              MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE | MAP_NORESERVE, -1, 0);
    check(pop != MAP_FAILED, "populated mapping");
    memset(pop, 0x5a, 64 * 4096);
    printf("populated at %p checksum %016llx\n", (void *)pop,
           (unsigned long long)fnv(pop, 64 * 4096));

    for (int i = 0; i < 4; i++) check(munmap(maps[i], sizes[i]) == 0, "munmap");
    munmap(h, 4096);
    munmap(pop, 64 * 4096);
    /* The same request again usually lands at a recorded address. */
    unsigned char *again = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    printf("remapped at %p\n", (void *)again);
    printf("%s\n", failures ? "FAILED" : "ALL OK");
    return failures != 0;
}
