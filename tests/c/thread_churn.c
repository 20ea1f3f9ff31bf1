/* Thread churn: 200 threads created and joined one after another, each
 * making a few calls the preload library buffers (stat, getpid, open, read,
 * close of a small regular file). Under rrpipe every thread that makes a
 * buffered call gets a syscall buffer (64 KiB stack + 256 KiB); it must go
 * away when the thread ends, or a thread pool leaks 320 KiB a thread.
 *
 * The main thread compares its address space (VmSize in
 * /proc/self/status) after one warm-up thread (glibc's thread-stack cache
 * and malloc arena, the main thread's own buffer) with the size after the
 * churn, and prints "leaked: no" or "leaked: yes N" (N KiB more), then a
 * checksum of what the threads read. Then a forked child, which inherits
 * the main thread's buffer, churns a few threads of its own and ends with
 * pthread_exit from its main thread (releasing its copy of the buffer),
 * and a vfork child, which shares the parent's, leaves with _exit (no
 * destructor runs: the parent's buffer stays). /proc/self/status is read with
 * open/read/close, no stdio: no heap growth between the two measurements.
 * With -v it also prints both sizes and both counts of mappings (lines of
 * /proc/self/maps) to stderr. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define NTHREADS 200

static char path[64];
static pid_t main_pid; /* of the process the threads belong to */
static unsigned long checksum;
static int failures;

static void *worker(void *arg) {
    long i = (long)arg;
    struct stat st;
    char buf[128];
    if (stat(path, &st) != 0 || st.st_size <= 0)
        failures++;
    if (getpid() != main_pid)
        failures++;
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        failures++;
        return NULL;
    }
    ssize_t n = read(fd, buf, sizeof buf);
    if (n != st.st_size)
        failures++;
    for (ssize_t k = 0; k < n; k++)
        checksum = checksum * 31 + (unsigned char)buf[k] + (unsigned long)i;
    close(fd);
    return NULL;
}

/* The start of /proc/self/FILE, read with plain syscalls (buffered under
 * rrpipe), NUL-terminated; its length or -1. */
static ssize_t slurp(const char *file, char *buf, size_t size) {
    char name[64];
    snprintf(name, sizeof name, "/proc/self/%s", file);
    int fd = open(name, O_RDONLY);
    if (fd < 0)
        return -1;
    ssize_t got = 0, n;
    while (got < (ssize_t)size - 1 && (n = read(fd, buf + got, size - 1 - got)) > 0)
        got += n;
    close(fd);
    buf[got] = 0;
    return got;
}

/* Lines of /proc/self/maps. */
static long mappings(void) {
    static char buf[1 << 20];
    if (slurp("maps", buf, sizeof buf) <= 0)
        return -1;
    long lines = 0;
    for (char *p = buf; *p; p++)
        lines += *p == '\n';
    return lines;
}

/* VmSize in KiB. */
static long vm_size(void) {
    static char buf[4096];
    if (slurp("status", buf, sizeof buf) <= 0)
        return -1;
    char *p = strstr(buf, "VmSize:");
    return p ? strtol(p + 7, NULL, 10) : -1;
}

static void run_one(long i) {
    pthread_t t;
    if (pthread_create(&t, NULL, worker, (void *)i) != 0) {
        printf("FAIL: pthread_create %ld\n", i);
        exit(1);
    }
    pthread_join(t, NULL);
}

int main(int argc, char **argv) {
    int verbose = argc > 1 && strcmp(argv[1], "-v") == 0;
    main_pid = getpid();
    strcpy(path, "/tmp/rrpipe_thread_churn.XXXXXX");
    int fd = mkstemp(path);
    if (fd < 0) {
        perror("mkstemp");
        return 1;
    }
    const char text[] = "thread churn: each thread reads these bytes\n";
    if (write(fd, text, sizeof text - 1) != (ssize_t)(sizeof text - 1)) {
        perror("write");
        return 1;
    }
    close(fd);

    run_one(-1); /* warm-up */
    long maps_before = verbose ? mappings() : 0;
    long before = vm_size();
    for (long i = 0; i < NTHREADS; i++)
        run_one(i);
    long after = vm_size();
    long maps_after = verbose ? mappings() : 0;
    if (verbose)
        fprintf(stderr, "VmSize %ld -> %ld KiB, mappings %ld -> %ld\n", before, after,
                maps_before, maps_after);

    if (before < 0 || after < 0)
        printf("FAIL: cannot read VmSize\n");
    else if (after == before)
        printf("leaked: no\n");
    else
        printf("leaked: yes %ld\n", after - before);
    printf("threads: %d, failures: %d, checksum: %lx\n", NTHREADS, failures, checksum);
    fflush(stdout);

    int status;
    pid_t child = fork();
    if (child == 0) {
        pid_t parent = main_pid;
        main_pid = getpid();
        if (main_pid == parent)
            _exit(2);
        for (long i = 0; i < 5; i++)
            run_one(i);
        if (failures != 0)
            _exit(1);
        pthread_exit(NULL); /* the last thread: the process exits with 0 */
    }
    waitpid(child, &status, 0);
    printf("fork child: status %d\n", status);
    child = vfork();
    if (child == 0)
        _exit(getpid() == main_pid ? 1 : 7);
    waitpid(child, &status, 0);
    printf("vfork child: exit %d\n", WEXITSTATUS(status));
    /* The parent's buffer survived both children. */
    struct stat st;
    printf("after the children: stat %d, getpid %s\n", stat("/", &st),
           getpid() == main_pid ? "ok" : "FAIL");
    unlink(path);
    return failures != 0;
}
