/* epoll on a socketpair, with the peer first a forked child process, then a
 * thread: the requester sends numbered requests, waits for each reply with
 * epoll_wait, checks it, and finally sees the peer hang up (EPOLLRDHUP). */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define MSG 32
#define COUNT 20

static int failures;

static void check(int ok, const char *what) {
    if (!ok) {
        printf("FAIL: %s\n", what);
        failures++;
    }
}

static int read_full(int fd, char *buf, size_t n) {
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r <= 0)
            return got == 0 && r == 0 ? 0 : -1;
        got += (size_t)r;
    }
    return 1;
}

static int write_full(int fd, const char *buf, size_t n) {
    size_t off = 0;
    while (off < n) {
        ssize_t w = write(fd, buf + off, n - off);
        if (w <= 0)
            return -1;
        off += (size_t)w;
    }
    return 0;
}

/* The peer: answers each request with its own epoll loop, until EOF. */
static int serve(int fd) {
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    int served = 0;
    for (;;) {
        struct epoll_event out;
        int n = epoll_wait(ep, &out, 1, 10000);
        if (n != 1)
            return -1;
        char buf[MSG], reply[MSG];
        int r = read_full(fd, buf, MSG);
        if (r == 0)
            break;
        if (r < 0)
            return -1;
        int seq;
        if (sscanf(buf, "request %d", &seq) != 1)
            return -1;
        memset(reply, 0, MSG);
        snprintf(reply, MSG, "reply %d sq=%d", seq, seq * seq);
        if (write_full(fd, reply, MSG) != 0)
            return -1;
        served++;
    }
    close(ep);
    close(fd);
    return served;
}

static void *serve_thread(void *arg) {
    return (void *)(long)serve((int)(long)arg);
}

static void request(int fd, const char *label) {
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.u32 = 7};
    check(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) == 0, "epoll_ctl ADD");
    int good = 0;
    for (int i = 0; i < COUNT; i++) {
        char buf[MSG];
        memset(buf, 0, MSG);
        snprintf(buf, MSG, "request %d", i);
        check(write_full(fd, buf, MSG) == 0, "write request");
        struct epoll_event out;
        int n = epoll_wait(ep, &out, 1, 10000);
        check(n == 1 && out.data.u32 == 7 && (out.events & EPOLLIN), "epoll_wait: readable");
        char reply[MSG], want[MSG];
        check(read_full(fd, reply, MSG) == 1, "read reply");
        memset(want, 0, MSG);
        snprintf(want, MSG, "reply %d sq=%d", i, i * i);
        if (memcmp(reply, want, MSG) == 0)
            good++;
        if (i == 0 || i == COUNT - 1)
            printf("%s: %s\n", label, reply);
    }
    printf("%s: %d/%d replies correct\n", label, good, COUNT);
    check(good == COUNT, "all replies correct");
    /* Nothing pending: a zero timeout finds nothing. */
    struct epoll_event out;
    check(epoll_wait(ep, &out, 1, 0) == 0, "no event pending");
    /* Close our writing side: the peer sees EOF, closes, and we see it hang up. */
    shutdown(fd, SHUT_WR);
    int n = epoll_wait(ep, &out, 1, 10000);
    printf("%s: after shutdown: %d event(s), EPOLLRDHUP: %s\n", label, n,
           n == 1 && (out.events & EPOLLRDHUP) ? "yes" : "no");
    check(n == 1 && (out.events & EPOLLRDHUP), "peer hung up");
    close(ep);
    close(fd);
}

int main(void) {
    int sv[2];
    check(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0, "socketpair");
    fflush(stdout);
    pid_t p = fork();
    if (p < 0) {
        perror("fork");
        return 2;
    }
    if (p == 0) {
        close(sv[0]);
        int served = serve(sv[1]);
        _exit(served == COUNT ? 0 : 1);
    }
    close(sv[1]);
    request(sv[0], "process");
    int st;
    check(waitpid(p, &st, 0) == p, "waitpid");
    printf("process peer: exited=%d code=%d\n", WIFEXITED(st), WEXITSTATUS(st));
    check(WIFEXITED(st) && WEXITSTATUS(st) == 0, "peer process served every request");

    check(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0, "socketpair");
    pthread_t th;
    check(pthread_create(&th, NULL, serve_thread, (void *)(long)sv[1]) == 0, "pthread_create");
    request(sv[0], "thread");
    void *ret;
    pthread_join(th, &ret);
    printf("thread peer: served %ld\n", (long)ret);
    check((long)ret == COUNT, "peer thread served every request");

    printf("%s\n", failures ? "FAILED" : "ALL OK");
    return failures ? 1 : 0;
}
