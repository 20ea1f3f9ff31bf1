/* open/close, getdents64 (opendir/readdir), stat/fstat/lstat/statx. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int failures;

static void check(int ok, const char *what) {
    printf("%s: %s\n", what, ok ? "ok" : "FAIL");
    if (!ok) failures++;
}

static int cmp(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void print_stat(const char *how, const char *name, const struct stat *st) {
    printf("%s %s: ino=%lu size=%ld mode=%o nlink=%lu uid=%u gid=%u blocks=%ld "
           "mtime=%ld.%09ld ctime=%ld.%09ld dev=%lu\n",
           how, name, (unsigned long)st->st_ino, (long)st->st_size, st->st_mode,
           (unsigned long)st->st_nlink, st->st_uid, st->st_gid, (long)st->st_blocks,
           (long)st->st_mtim.tv_sec, st->st_mtim.tv_nsec, (long)st->st_ctim.tv_sec,
           st->st_ctim.tv_nsec, (unsigned long)st->st_dev);
}

int main(int argc, char **argv) {
    char tmpl[] = "/tmp/rrpipe-stat-XXXXXX";
    const char *dir = argc > 1 ? argv[1] : mkdtemp(tmpl);
    int own_dir = argc <= 1;
    if (!dir) { perror("mkdtemp"); return 1; }
    if (chdir(dir) != 0) { perror("chdir"); return 1; }

    const char *names[] = {"charlie.txt", "alpha.txt", "bravo.bin"};
    const int sizes[] = {3000, 10, 70000};
    for (int i = 0; i < 3; i++) {
        int fd = open(names[i], O_CREAT | O_WRONLY | O_TRUNC, 0640);
        if (fd < 0) { perror("open"); return 1; }
        char *buf = calloc(1, sizes[i]);
        memset(buf, 'a' + i, sizes[i]);
        if (write(fd, buf, sizes[i]) != sizes[i]) { perror("write"); return 1; }
        free(buf);
        struct stat st;
        check(fstat(fd, &st) == 0 && st.st_size == sizes[i], "fstat size");
        print_stat("fstat", names[i], &st);
        check(close(fd) == 0, "close");
    }
    check(mkdir("delta.d", 0755) == 0, "mkdir");
    check(symlink("alpha.txt", "echo.link") == 0, "symlink");

    DIR *d = opendir(".");
    if (!d) { perror("opendir"); return 1; }
    char *found[64];
    int nfound = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && nfound < 64) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        found[nfound++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(found, nfound, sizeof found[0], cmp);
    printf("entries: %d\n", nfound);
    for (int i = 0; i < nfound; i++) {
        struct stat st, lst;
        int r1 = stat(found[i], &st);
        int r2 = lstat(found[i], &lst);
        printf("  %s\n", found[i]);
        check(r1 == 0 && r2 == 0, "stat+lstat");
        print_stat("stat", found[i], &st);
        print_stat("lstat", found[i], &lst);
        struct statx sx;
        int r3 = statx(AT_FDCWD, found[i], AT_SYMLINK_NOFOLLOW, STATX_ALL, &sx);
        check(r3 == 0 && sx.stx_ino == lst.st_ino && (long)sx.stx_size == (long)lst.st_size,
              "statx agrees with lstat");
        printf("statx %s: mask=%x ino=%llu size=%llu mode=%o btime=%lld.%09u mtime=%lld.%09u\n",
               found[i], sx.stx_mask, (unsigned long long)sx.stx_ino,
               (unsigned long long)sx.stx_size, sx.stx_mode, (long long)sx.stx_btime.tv_sec,
               sx.stx_btime.tv_nsec, (long long)sx.stx_mtime.tv_sec, sx.stx_mtime.tv_nsec);
    }
    check(nfound == 5, "five entries");

    struct stat st;
    int r = stat("echo.link", &st);
    check(r == 0 && st.st_size == 10, "stat follows the symlink");
    r = lstat("echo.link", &st);
    check(r == 0 && S_ISLNK(st.st_mode), "lstat does not");

    errno = 0;
    r = stat("does-not-exist", &st);
    printf("stat missing -> %d errno=%d (%s)\n", r, errno, strerror(errno));
    check(r == -1 && errno == ENOENT, "stat ENOENT");
    errno = 0;
    r = open("does-not-exist", O_RDONLY);
    printf("open missing -> %d errno=%d\n", r, errno);
    check(r == -1 && errno == ENOENT, "open ENOENT");

    r = stat("/etc/passwd", &st);
    check(r == 0, "stat /etc/passwd");
    print_stat("stat", "/etc/passwd", &st);
    r = stat(".", &st);
    print_stat("stat", "(the directory)", &st);

    for (int i = 0; i < 3; i++) unlink(names[i]);
    unlink("echo.link");
    rmdir("delta.d");
    if (chdir("/") != 0) return 1;
    if (own_dir) rmdir(dir);
    for (int i = 0; i < nfound; i++) free(found[i]);
    printf("%s\n", failures ? "FAILED" : "ALL OK");
    return failures != 0;
}
