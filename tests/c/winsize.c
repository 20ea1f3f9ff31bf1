/* ioctl(TIOCGWINSZ) and isatty on fds 0, 1, 2, with errno. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

int main(void) {
    for (int fd = 0; fd < 3; fd++) {
        struct winsize ws;
        memset(&ws, 0xee, sizeof ws);
        errno = 0;
        int r = ioctl(fd, TIOCGWINSZ, &ws);
        int e = errno;
        printf("fd %d: TIOCGWINSZ -> %d errno=%d (%s)", fd, r, e, strerror(e));
        if (r == 0) printf(" rows=%u cols=%u xpixel=%u ypixel=%u", ws.ws_row, ws.ws_col,
                           ws.ws_xpixel, ws.ws_ypixel);
        printf("\n");
        errno = 0;
        int t = isatty(fd);
        e = errno;
        printf("fd %d: isatty -> %d errno=%d (%s)\n", fd, t, e, strerror(e));
    }
    errno = 0;
    struct winsize ws;
    int r = ioctl(99, TIOCGWINSZ, &ws);
    printf("fd 99: TIOCGWINSZ -> %d errno=%d (%s)\n", r, errno, strerror(errno));
    printf("ALL OK\n");
    return 0;
}
