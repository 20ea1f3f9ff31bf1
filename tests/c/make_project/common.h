/* Shared declarations of the tiny project that tests/processes.rs builds
 * with make under rrpipe (many processes: make, sh, gcc, cc1, as, ld). */
#ifndef COMMON_H
#define COMMON_H

#define TABLE_SIZE 12

long fib(int n);
long sum_table(const long *t, int n);
void shout(const char *in, char *out, unsigned long size);

#endif
