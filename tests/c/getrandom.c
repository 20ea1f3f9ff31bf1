/* getrandom(2), /dev/urandom and the kernel's AT_RANDOM bytes, in hex. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/random.h>
#include <unistd.h>

static void hex(const char *label, const unsigned char *p, size_t n) {
    printf("%s:", label);
    for (size_t i = 0; i < n; i++) printf("%02x", p[i]);
    printf("\n");
}

int main(void) {
    int failures = 0;
    unsigned char a[32], b[32], c[32];
    ssize_t n = getrandom(a, sizeof a, 0);
    printf("getrandom -> %zd\n", n);
    hex("getrandom", a, sizeof a);
    n = getrandom(b, sizeof b, GRND_NONBLOCK);
    printf("getrandom nonblock -> %zd\n", n);
    hex("getrandom nonblock", b, sizeof b);
    if (memcmp(a, b, sizeof a) == 0) { printf("FAIL: two draws equal\n"); failures++; }

    int fd = open("/dev/urandom", O_RDONLY);
    if (fd < 0) { perror("open /dev/urandom"); return 1; }
    n = read(fd, c, sizeof c);
    printf("read /dev/urandom -> %zd\n", n);
    hex("urandom", c, sizeof c);
    close(fd);

    const unsigned char *at_random = (const unsigned char *)getauxval(AT_RANDOM);
    if (at_random) hex("AT_RANDOM", at_random, 16);
    else { printf("FAIL: no AT_RANDOM\n"); failures++; }

    printf("%s\n", failures ? "FAILED" : "ALL OK");
    return failures != 0;
}
