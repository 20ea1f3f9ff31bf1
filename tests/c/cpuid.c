/* Asks cpuid what a program asks at start-up: rrpipe traps it and hides
 * XSAVE (glibc's lazy binding would otherwise save registers with XSAVE,
 * whose output depends on context switches), RTM and the APIC id. */
#include <cpuid.h>
#include <stdio.h>

int main(void) {
    unsigned a, b, c, d;
    __cpuid(1, a, b, c, d);
    printf("xsave %u osxsave %u apic %u\n", (c >> 26) & 1, (c >> 27) & 1, b >> 24);
    __cpuid_count(7, 0, a, b, c, d);
    printf("rtm %u hle %u\n", (b >> 11) & 1, (b >> 4) & 1);
    __cpuid(0, a, b, c, d);
    printf("max leaf %u\n", a);
    return 0;
}
