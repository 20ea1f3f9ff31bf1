/* What glibc learned from cpuid while the dynamic loader started the
 * program (rrpipe traps cpuid then, hiding XSAVE so that glibc's
 * lazy-binding trampoline does not write XSAVE output into memory, and
 * RTM), and what cpuid says once the program runs (the machine's answer:
 * rrpipe stops trapping after start-up). */
#include <cpuid.h>
#include <stdio.h>
#include <sys/platform/x86.h>

int main(void) {
    printf("glibc: xsave %d osxsave %d rtm %d\n", CPU_FEATURE_PRESENT(XSAVE),
           CPU_FEATURE_PRESENT(OSXSAVE), CPU_FEATURE_PRESENT(RTM));
    unsigned a, b, c, d;
    __cpuid(0, a, b, c, d);
    printf("max leaf %u\n", a);
    __cpuid(1, a, b, c, d);
    printf("xsave %u\n", (c >> 26) & 1);
    return 0;
}
