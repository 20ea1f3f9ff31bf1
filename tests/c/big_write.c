/* Writes 100, 2000 and 100 bytes to fd 3, and 2000 bytes to fd 4 (both
 * /dev/null), for the big-write dump policy: with fd = 3 and bytes = 1024
 * exactly one of these writes (the second) is big enough, and the one to
 * fd 4 is on the wrong descriptor. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static char buf[2000];

static int put(int fd, size_t n) {
    ssize_t w = write(fd, buf, n);
    if (w != (ssize_t)n) {
        printf("FAIL: write(%d, %zu) -> %zd\n", fd, n, w);
        return 1;
    }
    return 0;
}

int main(void) {
    int null = open("/dev/null", O_WRONLY);
    if (null < 0 || dup2(null, 3) != 3 || dup2(null, 4) != 4) {
        perror("/dev/null");
        return 2;
    }
    memset(buf, 'x', sizeof buf);
    int bad = put(3, 100) + put(3, 2000) + put(4, 2000) + put(3, 100);
    printf("wrote 100, 2000 and 100 bytes to fd 3, 2000 to fd 4\n");
    return bad ? 1 : 0;
}
