/* alarm(1) interrupts a compute loop that makes no syscall:
 *     while (!flag) counter++;
 * The counter at the interruption differs at each run (and recording); a
 * replay must deliver the signal at the very same iteration. */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static volatile int flag;
static unsigned long counter;

static void on_alarm(int sig) {
    (void)sig;
    flag = 1;
}

int main(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGALRM, &sa, NULL);

    printf("spinning until SIGALRM\n");
    fflush(stdout);
    alarm(1);
    while (!flag)
        counter++;
    printf("counter: %lu\n", counter);
    printf("%s\n", counter > 0 ? "ALL OK" : "FAIL: no iterations");
    return 0;
}
