/* Prints a line, then writes through a NULL pointer: killed by SIGSEGV. */
#include <stdio.h>

int main(void) {
    printf("before the crash\n");
    fflush(stdout);
    *(volatile int *)0 = 1;
    printf("FAIL: survived\n");
    return 0;
}
