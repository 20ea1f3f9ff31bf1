/* Prints, then exits with status 42. */
#include <stdio.h>
#include <stdlib.h>

int main(void) {
    printf("about to exit with 42\n");
    fprintf(stderr, "a line on stderr\n");
    exit(42);
}
