/* Process identity: pids, ids, cwd, resource limits. */
#define _GNU_SOURCE
#include <stdio.h>
#include <sys/resource.h>
#include <unistd.h>

static void lim(const char *name, int res) {
    struct rlimit r;
    int ret = getrlimit(res, &r);
    printf("getrlimit %s -> %d cur=%llu max=%llu\n", name, ret, (unsigned long long)r.rlim_cur,
           (unsigned long long)r.rlim_max);
}

int main(void) {
    pid_t pid = getpid();
    printf("pid: %d\n", pid);
    printf("ppid: %d\n", getppid());
    printf("tid: %d\n", gettid());
    printf("uid: %d euid: %d gid: %d egid: %d\n", getuid(), geteuid(), getgid(), getegid());
    printf("pgid: %d sid: %d\n", getpgrp(), getsid(0));
    char cwd[4096];
    printf("cwd: %s\n", getcwd(cwd, sizeof cwd) ? cwd : "(error)");
    lim("NOFILE", RLIMIT_NOFILE);
    lim("STACK", RLIMIT_STACK);
    lim("AS", RLIMIT_AS);
    struct rlimit old;
    int r = prlimit(0, RLIMIT_NOFILE, NULL, &old);
    printf("prlimit NOFILE -> %d cur=%llu max=%llu\n", r, (unsigned long long)old.rlim_cur,
           (unsigned long long)old.rlim_max);
    /* Lower the soft limit and read it back. */
    struct rlimit lower = {old.rlim_cur > 64 ? 64 : old.rlim_cur, old.rlim_max};
    struct rlimit check;
    r = prlimit(0, RLIMIT_NOFILE, &lower, &check);
    printf("prlimit set -> %d old cur=%llu\n", r, (unsigned long long)check.rlim_cur);
    lim("NOFILE", RLIMIT_NOFILE);
    int ok = pid > 0 && gettid() == pid;
    printf("%s\n", ok ? "ALL OK" : "FAILED");
    return !ok;
}
