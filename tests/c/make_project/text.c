#include <ctype.h>

#include "common.h"

void shout(const char *in, char *out, unsigned long size) {
    unsigned long i = 0;
    for (; in[i] && i + 1 < size; i++)
        out[i] = (char)toupper((unsigned char)in[i]);
    out[i] = 0;
}
