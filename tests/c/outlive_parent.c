/* The parent exits at once; its child outlives it, then writes. Recorded
 * with --wait, the child's line is part of the recording (and the replay);
 * without, the recording ends with the parent and the child is gone. */
#define _GNU_SOURCE
#include <stdio.h>
#include <time.h>
#include <unistd.h>

int main(void) {
    pid_t child = fork();
    if (child < 0)
        return 2;
    if (child == 0) {
        struct timespec ts = {0, 100 * 1000 * 1000};
        nanosleep(&ts, NULL);
        printf("child outlived its parent\n");
        return 0;
    }
    printf("parent exits\n");
    return 7;
}
