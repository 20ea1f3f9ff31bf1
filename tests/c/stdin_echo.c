/* Reads all of stdin; prints its length, an FNV-1a hash and the content
 * uppercased. */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(void) {
    size_t cap = 1 << 12, len = 0;
    unsigned char *buf = malloc(cap);
    for (;;) {
        if (len == cap) buf = realloc(buf, cap *= 2);
        ssize_t n = read(0, buf + len, cap - len);
        if (n < 0) { perror("read"); return 1; }
        if (n == 0) break;
        len += n;
    }
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < len; i++) { h ^= buf[i]; h *= 0x100000001b3ull; }
    printf("length: %zu\n", len);
    printf("hash: %016llx\n", (unsigned long long)h);
    for (size_t i = 0; i < len; i++) buf[i] = toupper(buf[i]);
    fwrite(buf, 1, len, stdout);
    printf("\n-- end --\n");
    free(buf);
    return 0;
}
