#include "dptrain/util/error.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int dp_fail(dp_err *err, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return -1;
}

int dp_prefix(dp_err *err, const char *fmt, ...)
{
    if (!err)
        return -1;
    char prefix[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    /* Shift the old message right and put "prefix: " in front, truncating the tail. */
    size_t plen = strlen(prefix), cap = sizeof err->msg;
    memmove(err->msg + plen + 2, err->msg, cap - plen - 3);
    memcpy(err->msg, prefix, plen);
    err->msg[plen] = ':';
    err->msg[plen + 1] = ' ';
    err->msg[cap - 1] = 0;
    return -1;
}

/* calloc, or aligned_alloc and zeroing where align is not 0 (a power of two), of at least
 * one byte: NULL with dp_calloc's messages on failure. */
static void *zeroed(size_t count, size_t size, size_t align, const char *what, dp_err *err)
{
    if (size != 0 && count > (SIZE_MAX - align) / size) {
        dp_fail(err, "cannot allocate %s: %zu x %zu bytes overflows", what, count, size);
        return NULL;
    }
    const size_t n = count ? count : 1, s = size ? size : 1;
    const size_t bytes = align ? (n * s + align - 1) & ~(align - 1) : 0;
    void *p = align ? aligned_alloc(align, bytes) : calloc(n, s);
    if (!p)
        dp_fail(err, "out of memory allocating %s (%zu bytes)", what, count * size);
    else if (align)
        memset(p, 0, bytes);
    return p;
}

void *dp_calloc(size_t count, size_t size, const char *what, dp_err *err)
{
    return zeroed(count, size, 0, what, err);
}

void *dp_calloc_lines(size_t count, size_t size, const char *what, dp_err *err)
{
    return zeroed(count, size, 64, what, err);
}
