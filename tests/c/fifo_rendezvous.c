/* Two threads meet at named pipes (FIFOs) in the directory given as argv[1]
 * (issue 5: an open that waits for the other end must not freeze the
 * serialized schedule, whichever end opens first).
 *
 * 1. The writer thread opens "w-first" for writing first (it waits for a
 *    reader), the main thread opens it for reading 20 ms later.
 * 2. The reader thread opens "r-first" for reading first (it waits for a
 *    writer), the main thread opens it for writing 20 ms later.
 * 3. The main thread opens "rdwr" read-write (never waits), writes to it
 *    and reads its own bytes back.
 * 4. The main thread opens "w-first" for writing with O_NONBLOCK and no
 *    reader: ENXIO.
 * 5. The main thread stats "swapped", a regular file, and opens it for
 *    reading (the library may skip its own stat: the program's just said
 *    what the path is); then renames a FIFO over it, stats nothing, and
 *    opens it for reading again while a thread opens it for writing 20 ms
 *    later: the second open must wait for that writer, not believe the
 *    stat of before the rename.
 * Then the status flags of the descriptors are checked: O_NONBLOCK only
 * where the program asked for it. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char w_first[4096], r_first[4096], rdwr[4096], swapped[4096], swap_fifo[4096];
static int failures;

static void check(int ok, const char *what) {
    if (!ok) {
        printf("FAILED: %s (errno %d)\n", what, errno);
        failures++;
    }
}

static void *writer(void *arg) {
    (void)arg;
    int fd = open(w_first, O_WRONLY);
    check(fd >= 0, "writer thread opens w-first");
    check((fcntl(fd, F_GETFL) & O_NONBLOCK) == 0, "w-first writer is blocking");
    check(write(fd, "ping", 4) == 4, "write ping");
    close(fd);
    return NULL;
}

static void *reader(void *arg) {
    char buf[8] = {0};
    int fd = open(r_first, O_RDONLY);
    check(fd >= 0, "reader thread opens r-first");
    check(read(fd, buf, 4) == 4, "read pong");
    close(fd);
    snprintf((char *)arg, 8, "%s", buf);
    return NULL;
}

static void *late_writer(void *arg) {
    (void)arg;
    usleep(20 * 1000);
    int fd = open(swapped, O_WRONLY);
    check(fd >= 0, "late writer opens swapped");
    check(write(fd, "late", 4) == 4, "write late");
    close(fd);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 2) return 2;
    snprintf(w_first, sizeof w_first, "%s/w-first", argv[1]);
    snprintf(r_first, sizeof r_first, "%s/r-first", argv[1]);
    snprintf(rdwr, sizeof rdwr, "%s/rdwr", argv[1]);
    snprintf(swapped, sizeof swapped, "%s/swapped", argv[1]);
    snprintf(swap_fifo, sizeof swap_fifo, "%s/swap-fifo", argv[1]);
    check(mkfifo(w_first, 0600) == 0, "mkfifo w-first");
    check(mkfifo(r_first, 0600) == 0, "mkfifo r-first");
    check(mkfifo(rdwr, 0600) == 0, "mkfifo rdwr");

    pthread_t t;
    pthread_create(&t, NULL, writer, NULL);
    usleep(20 * 1000);
    int fd = open(w_first, O_RDONLY);
    check(fd >= 0, "main opens w-first for reading");
    char buf[8] = {0};
    check(read(fd, buf, 4) == 4, "read ping");
    close(fd);
    pthread_join(t, NULL);
    printf("1: writer first: %s\n", buf);

    char got[8] = {0};
    pthread_create(&t, NULL, reader, got);
    usleep(20 * 1000);
    fd = open(r_first, O_WRONLY | O_CLOEXEC);
    check(fd >= 0, "main opens r-first for writing");
    check((fcntl(fd, F_GETFL) & O_NONBLOCK) == 0, "r-first writer is blocking");
    check((fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0, "r-first writer is close-on-exec");
    check(write(fd, "pong", 4) == 4, "write pong");
    close(fd);
    pthread_join(t, NULL);
    printf("2: reader first: %s\n", got);

    fd = open(rdwr, O_RDWR | O_APPEND);
    check(fd >= 0, "open rdwr");
    int fl = fcntl(fd, F_GETFL);
    check((fl & O_NONBLOCK) == 0 && (fl & O_APPEND) != 0, "rdwr flags as asked");
    check(write(fd, "self", 4) == 4, "write to rdwr");
    memset(buf, 0, sizeof buf);
    check(read(fd, buf, 4) == 4, "read from rdwr");
    close(fd);
    printf("3: read-write: %s\n", buf);

    fd = open(w_first, O_WRONLY | O_NONBLOCK);
    printf("4: no reader: %s\n", fd < 0 && errno == ENXIO ? "ENXIO" : "opened");

    fd = open(swapped, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    check(fd >= 0 && write(fd, "file", 4) == 4, "create swapped");
    close(fd);
    struct stat st;
    check(stat(swapped, &st) == 0 && S_ISREG(st.st_mode), "stat swapped");
    fd = open(swapped, O_RDONLY);
    check(fd >= 0 && (fcntl(fd, F_GETFL) & (O_ACCMODE | O_NONBLOCK)) == O_RDONLY,
          "open swapped: flags as asked");
    memset(buf, 0, sizeof buf);
    check(read(fd, buf, 4) == 4, "read swapped");
    close(fd);
    check(mkfifo(swap_fifo, 0600) == 0, "mkfifo swap-fifo");
    check(rename(swap_fifo, swapped) == 0, "rename the FIFO over swapped");
    pthread_create(&t, NULL, late_writer, NULL);
    fd = open(swapped, O_RDONLY);
    check(fd >= 0, "open swapped, now a FIFO");
    char late[8] = {0};
    check(read(fd, late, 4) == 4, "read late");
    close(fd);
    pthread_join(t, NULL);
    printf("5: stat, then a FIFO renamed over: %s, %s\n", buf, late);

    unlink(w_first);
    unlink(r_first);
    unlink(rdwr);
    unlink(swapped);
    printf(failures ? "FAILURES\n" : "ALL OK\n");
    return failures != 0;
}
