/* What syscall buffering must not let a program notice (issue 5): errno
 * after failing and succeeding calls, the file descriptors it has (listed
 * from /proc/self/fd), its signal mask (also inside a signal handler and
 * in a thread), its signal dispositions and thread count (from
 * /proc/self/status), and the same in a forked child. Everything printed
 * is the same natively, recorded and replayed.
 *
 * Usage: buffering_invisible DIR */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int failures;

static void check(int ok, const char *what) {
    printf("%s: %s\n", what, ok ? "ok" : "FAIL");
    if (!ok) failures++;
}

/* A failing call: its result and errno, printed. */
#define FAILS(call, want)                                                         \
    do {                                                                          \
        errno = 0;                                                                \
        long r_ = (long)(call);                                                   \
        int e_ = errno;                                                           \
        printf("%-40s -> %ld errno %d (%s)\n", #call, r_, e_, strerrorname_np(e_)); \
        if (r_ != -1 || e_ != (want)) {                                           \
            printf("FAIL: expected -1 and %s\n", strerrorname_np(want));          \
            failures++;                                                           \
        }                                                                         \
    } while (0)

/* A succeeding call must leave errno alone. */
#define KEEPS_ERRNO(call)                                                         \
    do {                                                                          \
        errno = 4242;                                                             \
        long r_ = (long)(call);                                                   \
        int e_ = errno;                                                           \
        printf("%-40s -> %s, errno kept: %s\n", #call, r_ >= 0 ? "ok" : "failed",  \
               e_ == 4242 ? "yes" : "no");                                        \
        if (r_ < 0 || e_ != 4242) failures++;                                     \
    } while (0)

/* The open file descriptors, from /proc/self/fd (the directory's own
 * descriptor included), sorted. */
static void list_fds(const char *label) {
    int fds[256], n = 0;
    DIR *d = opendir("/proc/self/fd");
    if (!d) {
        printf("%s: opendir /proc/self/fd: %s\n", label, strerror(errno));
        failures++;
        return;
    }
    struct dirent *e;
    while ((e = readdir(d)) && n < 256) {
        if (e->d_name[0] == '.') continue;
        fds[n++] = atoi(e->d_name);
    }
    closedir(d);
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && fds[j - 1] > fds[j]; j--) {
            int t = fds[j];
            fds[j] = fds[j - 1];
            fds[j - 1] = t;
        }
    printf("%s: fds", label);
    for (int i = 0; i < n; i++) printf(" %d", fds[i]);
    printf("\n");
}

/* The blocked signals, as numbers. */
static void mask_text(char *out, size_t size) {
    sigset_t s;
    sigprocmask(SIG_BLOCK, NULL, &s);
    size_t len = 0;
    out[0] = 0;
    for (int sig = 1; sig < NSIG; sig++)
        if (sigismember(&s, sig) == 1)
            len += (size_t)snprintf(out + len, size - len, " %d", sig);
    if (len == 0) snprintf(out, size, " (none)");
}

static void print_mask(const char *label) {
    char text[512];
    mask_text(text, sizeof text);
    printf("%s: blocked%s\n", label, text);
}

/* Lines of /proc/self/status about signals and threads. */
static void print_status(const char *label) {
    char buf[8192];
    int fd = open("/proc/self/status", O_RDONLY);
    if (fd < 0) {
        printf("%s: open /proc/self/status: %s\n", label, strerror(errno));
        failures++;
        return;
    }
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n < 0) n = 0;
    buf[n] = 0;
    for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n"))
        if (!strncmp(line, "Threads:", 8) || !strncmp(line, "SigBlk:", 7) ||
            !strncmp(line, "SigIgn:", 7) || !strncmp(line, "SigCgt:", 7))
            printf("%s: %s\n", label, line);
}

static char file[4096];

/* A few buffered-style calls, from wherever (a handler, a thread). */
static int some_calls(void) {
    char buf[64];
    struct stat st;
    struct timespec ts;
    int ok = 1;
    int fd = open(file, O_RDONLY);
    ok &= fd >= 0;
    ok &= read(fd, buf, sizeof buf) == 12;
    ok &= lseek(fd, 0, SEEK_SET) == 0;
    ok &= pread(fd, buf, 5, 6) == 5 && !memcmp(buf, "world", 5);
    ok &= fstat(fd, &st) == 0 && st.st_size == 12;
    ok &= close(fd) == 0;
    ok &= stat(file, &st) == 0;
    ok &= clock_gettime(CLOCK_MONOTONIC, &ts) == 0;
    return ok;
}

static volatile int handler_calls_ok, handler_saw_own_signal, handler_errno_kept;
static char handler_mask[512];

static void on_usr2(int sig) {
    (void)sig;
    int saved = errno;
    errno = 777;
    handler_calls_ok = some_calls();
    handler_errno_kept = errno == 777;
    sigset_t s;
    sigprocmask(SIG_BLOCK, NULL, &s);
    handler_saw_own_signal = sigismember(&s, SIGUSR2) == 1;
    mask_text(handler_mask, sizeof handler_mask);
    errno = saved;
}

static char thread_mask[512];

static void *thread_main(void *arg) {
    (void)arg;
    int ok = 1;
    for (int i = 0; i < 50; i++) ok &= some_calls();
    errno = 0;
    ok &= open("/nonexistent/rrpipe-thread", O_RDONLY) == -1 && errno == ENOENT;
    errno = 0;
    ok &= read(-7, NULL, 0) == -1 && errno == EBADF;
    mask_text(thread_mask, sizeof thread_mask);
    return (void *)(long)ok;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    snprintf(file, sizeof file, "%s/hello.txt", argv[1]);
    int wfd = open(file, O_CREAT | O_WRONLY | O_TRUNC, 0644);
    if (wfd < 0 || write(wfd, "hello world\n", 12) != 12 || close(wfd)) {
        perror(file);
        return 1;
    }

    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    printf("RLIMIT_NOFILE: %llu %llu\n", (unsigned long long)rl.rlim_cur,
           (unsigned long long)rl.rlim_max);
    list_fds("at start");
    print_mask("at start");
    print_status("at start");

    /* errno after failing calls. */
    char buf[64];
    struct stat st;
    int pfd[2];
    if (pipe(pfd)) { perror("pipe"); return 1; }
    FAILS(open("/nonexistent/rrpipe-missing", O_RDONLY), ENOENT);
    FAILS(openat(AT_FDCWD, "/nonexistent/rrpipe-missing", O_RDONLY), ENOENT);
    FAILS(open(argv[1], O_WRONLY), EISDIR);
    FAILS(read(999, buf, sizeof buf), EBADF);
    FAILS(read(-1, buf, sizeof buf), EBADF);
    FAILS(write(999, "x", 1), EBADF);
    FAILS(pread(999, buf, 4, 0), EBADF);
    FAILS(pread(pfd[0], buf, 4, 0), ESPIPE);
    FAILS(lseek(pfd[0], 0, SEEK_SET), ESPIPE);
    FAILS(lseek(999, 0, SEEK_SET), EBADF);
    FAILS(stat("/nonexistent/rrpipe-missing", &st), ENOENT);
    FAILS(lstat("/nonexistent/rrpipe-missing", &st), ENOENT);
    FAILS(fstat(999, &st), EBADF);
    FAILS(access("/nonexistent/rrpipe-missing", R_OK), ENOENT);
    FAILS(readlink(file, buf, sizeof buf), EINVAL);
    FAILS(close(999), EBADF);
    FAILS(clock_gettime((clockid_t)12345, (struct timespec *)buf), EINVAL);
    FAILS(getdents64(999, buf, sizeof buf), EBADF);
    FAILS(fcntl(999, F_GETFD), EBADF);
    close(pfd[0]);
    close(pfd[1]);

    /* errno after succeeding ones. */
    int fd = open(file, O_RDONLY);
    KEEPS_ERRNO(read(fd, buf, sizeof buf));
    KEEPS_ERRNO(pread(fd, buf, 4, 2));
    KEEPS_ERRNO(lseek(fd, 3, SEEK_SET));
    KEEPS_ERRNO(fstat(fd, &st));
    KEEPS_ERRNO(stat(file, &st));
    KEEPS_ERRNO(access(file, R_OK));
    KEEPS_ERRNO(fcntl(fd, F_GETFL));
    KEEPS_ERRNO(clock_gettime(CLOCK_REALTIME, (struct timespec *)buf));
    KEEPS_ERRNO(getpid());
    KEEPS_ERRNO(close(fd));
    KEEPS_ERRNO(some_calls());

    /* Many calls, then the descriptors and the mask again. */
    int ok = 1;
    for (int i = 0; i < 200; i++) ok &= some_calls();
    check(ok, "200 rounds of calls");
    list_fds("after the calls");
    print_mask("after the calls");

    /* A mask of our own survives buffered calls. */
    sigset_t usr1;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    sigprocmask(SIG_BLOCK, &usr1, NULL);
    for (int i = 0; i < 20; i++) ok &= some_calls();
    print_mask("with SIGUSR1 blocked");
    sigprocmask(SIG_UNBLOCK, &usr1, NULL);
    print_mask("unblocked again");

    /* Calls inside a signal handler. */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr2;
    sigaction(SIGUSR2, &sa, NULL);
    raise(SIGUSR2);
    check(handler_calls_ok, "calls in a signal handler");
    check(handler_errno_kept, "errno kept in the handler");
    check(handler_saw_own_signal, "SIGUSR2 blocked while its handler runs");
    printf("in the handler: blocked%s\n", handler_mask);
    print_mask("after the handler");
    print_status("after the handler");

    /* A thread. */
    pthread_t t;
    void *tok;
    pthread_create(&t, NULL, thread_main, NULL);
    pthread_join(t, &tok);
    check(tok != NULL, "calls and errno in a thread");
    printf("in the thread: blocked%s\n", thread_mask);

    /* A forked child. */
    fflush(stdout);
    pid_t child = fork();
    if (child == 0) {
        int cok = 1;
        for (int i = 0; i < 20; i++) cok &= some_calls();
        errno = 0;
        cok &= stat("/nonexistent/rrpipe-child", &st) == -1 && errno == ENOENT;
        printf("child: calls %s\n", cok ? "ok" : "FAIL");
        list_fds("child");
        print_mask("child");
        fflush(stdout);
        _exit(cok ? 0 : 1);
    }
    int status;
    waitpid(child, &status, 0);
    check(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child");
    list_fds("at the end");
    print_status("at the end");

    printf(failures ? "FAILURES: %d\n" : "ALL OK\n", failures);
    return failures != 0;
}
