/* mkdir and mkdirat under a directory given as argv[1]: new directories,
 * one that exists already (EEXIST) and one under a missing parent
 * (ENOENT), each checked with stat; prints what it found. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void report(const char *what, int r, const char *path, int dirfd) {
    int e = r == 0 ? 0 : errno;
    struct stat st;
    int s = fstatat(dirfd, path, &st, 0);
    printf("%s %s: %d %s, %s\n", what, path, r, e ? strerror(e) : "ok",
           s == 0 && S_ISDIR(st.st_mode) ? "a directory" : "no directory");
}

int main(int argc, char **argv) {
    if (argc < 2 || chdir(argv[1]) != 0) {
        perror("chdir");
        return 1;
    }
    report("mkdir", mkdir("alpha", 0755), "alpha", AT_FDCWD);
    report("mkdir", mkdir("alpha", 0755), "alpha", AT_FDCWD);
    report("mkdir", mkdir("missing/beta", 0755), "missing/beta", AT_FDCWD);
    int dir = open("alpha", O_RDONLY | O_DIRECTORY);
    report("mkdirat", mkdirat(dir, "gamma", 0700), "gamma", dir);
    report("mkdirat", mkdirat(AT_FDCWD, "/proc/no-such-place/x", 0700), "/proc/no-such-place/x",
           AT_FDCWD);
    close(dir);
    return 0;
}
