/* A SIGSEGV handler (SA_SIGINFO) that recovers with siglongjmp, several
 * times: a NULL write, a read of an unmapped page, a write to a read-only
 * page, a read of a PROT_NONE page, and a stack overflow caught on an
 * alternate signal stack. The handler notes si_code and the fault address
 * (relative to the page, so the output does not depend on addresses). */
#define _GNU_SOURCE
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static sigjmp_buf env;
static volatile int faults;
static void *volatile fault_addr;
static volatile int fault_code;
static volatile int on_altstack;

static void on_segv(int sig, siginfo_t *si, void *ctx) {
    (void)sig;
    (void)ctx;
    faults++;
    fault_addr = si->si_addr;
    fault_code = si->si_code;
    stack_t cur;
    on_altstack = sigaltstack(NULL, &cur) == 0 && (cur.ss_flags & SS_ONSTACK);
    siglongjmp(env, faults);
}

static volatile unsigned long depth_limit = ~0UL;

/* Not a tail call, and -Winfinite-recursion cannot prove it endless. */
static unsigned long recurse(unsigned long depth) {
    volatile char pad[512];
    pad[0] = (char)depth;
    if (depth >= depth_limit)
        return pad[0];
    return recurse(depth + 1) + pad[0];
}

static const char *code_name(int c) {
    return c == SEGV_MAPERR ? "SEGV_MAPERR" : c == SEGV_ACCERR ? "SEGV_ACCERR" : "other";
}

int main(void) {
    static char altstack[64 * 1024];
    stack_t ss = {.ss_sp = altstack, .ss_size = sizeof altstack, .ss_flags = 0};
    if (sigaltstack(&ss, NULL) != 0) {
        perror("sigaltstack");
        return 2;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, NULL);

    long pg = sysconf(_SC_PAGESIZE);
    char *ro = mmap(NULL, pg, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    char *none = mmap(NULL, 2 * pg, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    char *gone = mmap(NULL, pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    munmap(gone, pg);
    static int failures; /* static: survives siglongjmp */

    struct {
        const char *what;
        char *base;
        long offset;
        int write;
        int code;
    } cases[] = {
        {"write to NULL", NULL, 0, 1, SEGV_MAPERR},
        {"read of an unmapped page", gone, 123, 0, SEGV_MAPERR},
        {"write to a read-only page", ro, 8, 1, SEGV_ACCERR},
        {"read of a PROT_NONE page", none, pg + 17, 0, SEGV_ACCERR},
        {"write to NULL again", NULL, 0, 1, SEGV_MAPERR},
    };
    int n = (int)(sizeof cases / sizeof cases[0]);
    for (int i = 0; i < n; i++) {
        volatile int reached = 0;
        if (sigsetjmp(env, 1) == 0) {
            volatile char *p = cases[i].base + cases[i].offset;
            if (cases[i].write)
                *p = 1;
            else
                reached = *p;
            printf("FAIL: %s did not fault\n", cases[i].what);
            failures++;
            continue;
        }
        (void)reached;
        long off = (char *)fault_addr - cases[i].base;
        printf("%d: %s: recovered, fault #%d, %s, at base+%ld\n", i, cases[i].what, faults,
               code_name(fault_code), off);
        if (fault_code != cases[i].code || off != cases[i].offset) {
            printf("FAIL: %s: wrong si_code or address\n", cases[i].what);
            failures++;
        }
    }

    if (sigsetjmp(env, 1) == 0) {
        recurse(0);
        printf("FAIL: no stack overflow\n");
        failures++;
    } else {
        printf("stack overflow: recovered, fault #%d, on the alternate stack: %s\n", faults,
               on_altstack ? "yes" : "no");
        failures += !on_altstack;
    }

    /* The handler's mask was restored by siglongjmp: SIGSEGV is not blocked. */
    sigset_t cur;
    sigprocmask(SIG_BLOCK, NULL, &cur);
    printf("SIGSEGV blocked after siglongjmp: %s\n", sigismember(&cur, SIGSEGV) ? "yes" : "no");
    failures += sigismember(&cur, SIGSEGV);
    printf("faults: %d\n", faults);
    failures += faults != n + 1;
    printf("%s\n", failures ? "FAILED" : "ALL OK");
    return failures ? 1 : 0;
}
