#include "common.h"

long fib(int n) {
    long a = 0, b = 1;
    for (int i = 0; i < n; i++) {
        long t = a + b;
        a = b;
        b = t;
    }
    return a;
}

long sum_table(const long *t, int n) {
    long s = 0;
    for (int i = 0; i < n; i++)
        s += t[i];
    return s;
}
