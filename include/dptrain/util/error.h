/* error: how failures travel up.
 *
 * Every function that can fail takes a dp_err * and returns 0 on success or -1 on
 * failure, after writing a message that says what was expected and what was found.
 * Only the driver decides what to do with it (print, agree across ranks, abort).
 * The caller owns the dp_err; nothing here allocates. */
#ifndef DPTRAIN_ERROR_H
#define DPTRAIN_ERROR_H

#include <stddef.h>

typedef struct {
    char msg[1024];
} dp_err;

/* Format a message into err (if not NULL) and return -1. */
int dp_fail(dp_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prefix an existing message, e.g. with the file name: "FILE: old message". */
int dp_prefix(dp_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Checked allocation: NULL with a message on failure (count * size overflow included). */
void *dp_calloc(size_t count, size_t size, const char *what, dp_err *err);
/* The same on a 64-byte boundary (a cache line; free() releases it): for buffers whose
 * parts several threads write side by side, so that no line is shared at a boundary. */
void *dp_calloc_lines(size_t count, size_t size, const char *what, dp_err *err);

#endif
