/* data_check: the few assertions the data-side unit tests share. Not assert(): these
 * stay on under NDEBUG, report every failure, and the program exits non-zero at the end. */
#ifndef DPTRAIN_TESTS_DATA_CHECK_H
#define DPTRAIN_TESTS_DATA_CHECK_H

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dptrain/util/error.h"

static int check_failures;

#define CHECK(cond)                                                                      \
    do {                                                                                 \
        if (!(cond)) {                                                                   \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);     \
            check_failures++;                                                            \
        }                                                                                \
    } while (0)

/* The call must fail (-1) with a message containing `needle` (and `needle2` unless NULL). */
#define CHECK_FAILS(call, err, needle, needle2)                                          \
    do {                                                                                 \
        (err)->msg[0] = '\0';                                                            \
        int check_rc_ = (call);                                                          \
        if (check_rc_ != -1 || !strstr((err)->msg, (needle)) ||                          \
            ((needle2) && !strstr((err)->msg, (needle2) ? (needle2) : ""))) {            \
            fprintf(stderr, "%s:%d: expected %s to fail with '%s'%s%s, got rc=%d: %s\n",  \
                    __FILE__, __LINE__, #call, (needle), (needle2) ? " and " : "",        \
                    (needle2) ? (needle2) : "", check_rc_, (err)->msg);                  \
            check_failures++;                                                            \
        } else {                                                                         \
            printf("  ok, rejected: %s\n", (err)->msg);                                  \
        }                                                                                \
    } while (0)

#define CHECK_OK(call, err)                                                              \
    do {                                                                                 \
        (err)->msg[0] = '\0';                                                            \
        if ((call) != 0) {                                                               \
            fprintf(stderr, "%s:%d: %s failed: %s\n", __FILE__, __LINE__, #call,         \
                    (err)->msg);                                                         \
            check_failures++;                                                            \
        }                                                                                \
    } while (0)

static int check_remove_one(const char *path, const struct stat *st, int flag, struct FTW *f)
{
    (void)st;
    (void)flag;
    (void)f;
    return remove(path);
}

/* A fresh directory under $TMPDIR (or /tmp); the caller frees the string. */
static char *check_tempdir(const char *tag)
{
    const char *base = getenv("TMPDIR");
    char *path = malloc(4096);
    if (!path)
        abort();
    snprintf(path, 4096, "%s/dptrain-%s-XXXXXX", base && *base ? base : "/tmp", tag);
    if (!mkdtemp(path)) {
        perror("mkdtemp");
        exit(1);
    }
    return path;
}

/* dir/name, in one of 8 rotating buffers so that several can be arguments of one call. */
static inline const char *check_path(const char *dir, const char *name)
{
    static char buf[8][4200];
    static int next;
    char *p = buf[next++ % 8];
    snprintf(p, sizeof buf[0], "%s/%s", dir, name);
    return p;
}

static void check_rmtree(const char *path) { nftw(path, check_remove_one, 16, FTW_DEPTH | FTW_PHYS); }

static int check_finish(const char *name)
{
    if (check_failures) {
        fprintf(stderr, "%s: %d check(s) failed\n", name, check_failures);
        return 1;
    }
    printf("%s: all checks passed\n", name);
    return 0;
}

#endif
