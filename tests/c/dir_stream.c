/* The directory-stream API (which the preload library implements itself
 * when buffering): 1,500 entries with long names (several getdents calls),
 * telldir/seekdir, rewinddir, readdir_r, dirfd, fdopendir's checks, errors,
 * and errno left alone at the end of a directory. Works in argv[1]. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FILES 1500

static int failures;

static void check(int ok, const char *what) {
    if (!ok) {
        printf("FAILED: %s (errno %d)\n", what, errno);
        failures++;
    }
}

/* Order-independent digest of the names a stream yields. */
static unsigned long long digest_of(DIR *d, int *count) {
    unsigned long long sum = 0;
    struct dirent *e;
    *count = 0;
    errno = 1234;
    while ((e = readdir(d)) != NULL) {
        unsigned long long h = 1469598103934665603ULL;
        for (const char *p = e->d_name; *p; p++) h = (h ^ (unsigned char)*p) * 1099511628211ULL;
        sum += h;
        (*count)++;
    }
    check(errno == 1234, "errno untouched at the end of the directory");
    return sum;
}

int main(int argc, char **argv) {
    if (argc != 2) return 2;
    char dir[4096], path[8192];
    snprintf(dir, sizeof dir, "%s/entries", argv[1]);
    check(mkdir(dir, 0700) == 0, "mkdir");
    for (int i = 0; i < FILES; i++) {
        snprintf(path, sizeof path, "%s/file-with-a-rather-long-name-%05d", dir, i);
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
        check(fd >= 0, "create");
        close(fd);
    }

    DIR *d = opendir(dir);
    check(d != NULL, "opendir");
    int count;
    unsigned long long sum = digest_of(d, &count);
    printf("readdir: %d entries\n", count);

    rewinddir(d);
    int again;
    check(digest_of(d, &again) == sum && again == count, "rewinddir reads the same");

    rewinddir(d);
    for (int i = 0; i < 700; i++) check(readdir(d) != NULL, "read 700");
    long pos = telldir(d);
    struct dirent *e = readdir(d);
    char name[256];
    snprintf(name, sizeof name, "%s", e ? e->d_name : "");
    for (int i = 0; i < 300; i++) readdir(d);
    seekdir(d, pos);
    e = readdir(d);
    check(e != NULL && strcmp(e->d_name, name) == 0, "seekdir back to a telldir");
    printf("seekdir: %s\n", e && strcmp(e->d_name, name) == 0 ? "same entry" : "different entry");

    struct stat st;
    check(fstat(dirfd(d), &st) == 0 && S_ISDIR(st.st_mode), "dirfd is the directory");
    check(closedir(d) == 0, "closedir");

    d = opendir(dir);
    struct dirent entry, *result;
    int n = 0;
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
    while (readdir_r(d, &entry, &result) == 0 && result != NULL) n++;
    printf("readdir_r: %d entries\n", n);
    closedir(d);

    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    d = fdopendir(fd);
    check(d != NULL, "fdopendir");
    unsigned long long s2 = digest_of(d, &n);
    check(s2 == sum && n == count, "fdopendir reads the same");
    closedir(d);
    check(fcntl(fd, F_GETFD) < 0 && errno == EBADF, "closedir closed the descriptor");

    snprintf(path, sizeof path, "%s/file-with-a-rather-long-name-00000", dir);
    fd = open(path, O_RDONLY);
    errno = 0;
    check(fdopendir(fd) == NULL && errno == ENOTDIR, "fdopendir of a file: ENOTDIR");
    close(fd);
    /* As glibc: an O_PATH descriptor makes a stream that cannot read. */
    fd = open(dir, O_PATH);
    d = fdopendir(fd);
    check(d != NULL, "fdopendir of an O_PATH descriptor");
    errno = 0;
    check(d != NULL && readdir(d) == NULL && errno == EBADF, "readdir of it: EBADF");
    if (d) closedir(d);
    errno = 0;
    check(opendir(path) == NULL && errno == ENOTDIR, "opendir of a file: ENOTDIR");
    errno = 0;
    snprintf(path, sizeof path, "%s/missing", dir);
    check(opendir(path) == NULL && errno == ENOENT, "opendir of nothing: ENOENT");

    for (int i = 0; i < FILES; i++) {
        snprintf(path, sizeof path, "%s/file-with-a-rather-long-name-%05d", dir, i);
        unlink(path);
    }
    rmdir(dir);
    printf("digest: %016llx\n", sum);
    printf(failures ? "FAILURES\n" : "ALL OK\n");
    return failures != 0;
}
