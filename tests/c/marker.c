/* A global buffer in the data segment and a few syscalls around it: the
 * checksum test corrupts one byte of `marker` during replay and expects
 * the mismatch to name the range that holds it. */
#include <stdio.h>
#include <unistd.h>

char marker[4096] = {1};

int main(void) {
    long sum = 0;
    for (int i = 0; i < 40; i++) {
        sum += getpid() & 1;
        marker[i] = (char)i;
    }
    printf("marker at %p, sum %ld\n", (void *)marker, sum);
    return 0;
}
