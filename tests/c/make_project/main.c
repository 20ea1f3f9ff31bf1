#include <stdio.h>

#include "common.h"

int main(void) {
    long table[TABLE_SIZE];
    for (int i = 0; i < TABLE_SIZE; i++)
        table[i] = fib(i);
    char buf[64];
    shout("built by make", buf, sizeof buf);
    printf("%s: fib(0..%d) sums to %ld\n", buf, TABLE_SIZE - 1, sum_table(table, TABLE_SIZE));
    return 0;
}
