/* Creates 300 files in a fresh directory, then lists them (several
 * getdents64 calls), sorted. */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define N 300

static int cmp(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(int argc, char **argv) {
    char tmpl[] = "/tmp/rrpipe-dents-XXXXXX";
    const char *dir = argc > 1 ? argv[1] : mkdtemp(tmpl);
    int own_dir = argc <= 1;
    if (!dir) { perror("mkdtemp"); return 1; }
    int dfd = open(dir, O_RDONLY | O_DIRECTORY);
    if (dfd < 0) { perror("open dir"); return 1; }
    for (int i = 0; i < N; i++) {
        char name[64];
        snprintf(name, sizeof name, "file-with-a-longish-name-%03d.txt", i);
        int fd = openat(dfd, name, O_CREAT | O_WRONLY | O_TRUNC, 0644);
        if (fd < 0) { perror("openat"); return 1; }
        close(fd);
    }
    DIR *d = fdopendir(dup(dfd));
    char **names = malloc((N + 8) * sizeof *names);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        if (n < N + 8) names[n++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof *names, cmp);
    printf("count: %d\n", n);
    int failures = n != N;
    for (int i = 0; i < n; i++) {
        char want[64];
        snprintf(want, sizeof want, "file-with-a-longish-name-%03d.txt", i);
        if (strcmp(names[i], want) != 0) failures++;
        printf("%s\n", names[i]);
        unlinkat(dfd, names[i], 0);
        free(names[i]);
    }
    free(names);
    close(dfd);
    if (own_dir) rmdir(dir);
    printf("%s\n", failures ? "FAILED" : "ALL OK");
    return failures != 0;
}
