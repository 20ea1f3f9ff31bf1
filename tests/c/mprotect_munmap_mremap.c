/* mprotect read-only and back, munmap part of a mapping, mremap grow
 * (MREMAP_MAYMOVE) and shrink; print addresses and checksums. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define PAGE 4096

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
    unsigned char *m = mmap(NULL, 8 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    check(m != MAP_FAILED, "mmap 8 pages");
    for (size_t i = 0; i < 8 * PAGE; i++) m[i] = (unsigned char)(i ^ (i >> 8));
    printf("mapping at %p checksum %016llx\n", (void *)m, (unsigned long long)fnv(m, 8 * PAGE));

    check(mprotect(m, 8 * PAGE, PROT_READ) == 0, "mprotect read-only");
    printf("read-only checksum %016llx\n", (unsigned long long)fnv(m, 8 * PAGE));
    check(mprotect(m + 2 * PAGE, 2 * PAGE, PROT_NONE) == 0, "mprotect none (part)");
    check(mprotect(m, 8 * PAGE, PROT_READ | PROT_WRITE) == 0, "mprotect back to read-write");
    memset(m + 3 * PAGE, 0xab, PAGE);
    printf("after write checksum %016llx\n", (unsigned long long)fnv(m, 8 * PAGE));

    /* Punch a hole: pages 4 and 5. */
    check(munmap(m + 4 * PAGE, 2 * PAGE) == 0, "munmap middle pages");
    /* Probe the hole: mincore fails with ENOMEM on unmapped memory. */
    unsigned char vec[2];
    check(mincore(m + 4 * PAGE, 2 * PAGE, vec) == -1, "hole is unmapped");

    /* Grow the first 4 pages: the hole lets it grow in place to 6 pages... */
    unsigned char *g = mremap(m, 4 * PAGE, 6 * PAGE, 0);
    check(g == m, "mremap grow in place");
    memset(g + 4 * PAGE, 0x11, 2 * PAGE);
    printf("grown in place at %p checksum %016llx\n", (void *)g,
           (unsigned long long)fnv(g, 6 * PAGE));
    /* ...but not to 64 pages without moving. */
    check(mremap(g, 6 * PAGE, 64 * PAGE, 0) == MAP_FAILED, "mremap without MAYMOVE fails");
    uint64_t before = fnv(g, 6 * PAGE);
    unsigned char *big = mremap(g, 6 * PAGE, 64 * PAGE, MREMAP_MAYMOVE);
    check(big != MAP_FAILED, "mremap MAYMOVE");
    printf("moved from %p to %p (moved: %s)\n", (void *)g, (void *)big, big != g ? "yes" : "no");
    check(fnv(big, 6 * PAGE) == before, "contents moved along");
    int zero = 1;
    for (size_t i = 6 * PAGE; i < 64 * PAGE; i++) zero &= big[i] == 0;
    check(zero, "grown part is zero");
    memset(big + 32 * PAGE, 0x77, 32 * PAGE);
    printf("big checksum %016llx\n", (unsigned long long)fnv(big, 64 * PAGE));

    /* Shrink. */
    unsigned char *small = mremap(big, 64 * PAGE, 2 * PAGE, 0);
    check(small == big, "mremap shrink in place");
    printf("shrunk checksum %016llx\n", (unsigned long long)fnv(small, 2 * PAGE));

    /* Move to a fixed address. */
    unsigned char *dst = mmap(NULL, 2 * PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    unsigned char *moved = mremap(small, 2 * PAGE, 2 * PAGE, MREMAP_MAYMOVE | MREMAP_FIXED, dst);
    check(moved == dst, "mremap FIXED");
    printf("fixed move to %p checksum %016llx\n", (void *)moved,
           (unsigned long long)fnv(moved, 2 * PAGE));

    check(munmap(moved, 2 * PAGE) == 0, "munmap");
    check(munmap(m + 6 * PAGE, 2 * PAGE) == 0, "munmap tail");
    printf("%s\n", failures ? "FAILED" : "ALL OK");
    return failures != 0;
}
