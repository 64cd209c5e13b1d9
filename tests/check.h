/* check: assertions for the model-side unit tests. They stay on under NDEBUG, report
 * every failure with its location, and check_exit() makes the program fail at the end. */
#ifndef DPTRAIN_TESTS_CHECK_H
#define DPTRAIN_TESTS_CHECK_H

#include <math.h>
#include <stdio.h>
#include <string.h>

static int check_failures, check_count;

#define CHECK(cond)                                                                      \
    do {                                                                                 \
        check_count++;                                                                   \
        if (!(cond)) {                                                                   \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);     \
            check_failures++;                                                            \
        }                                                                                \
    } while (0)

#define CHECK_NEAR(got, want, tol)                                                       \
    do {                                                                                 \
        double g_ = (got), w_ = (want);                                                  \
        check_count++;                                                                   \
        if (!(fabs(g_ - w_) <= (tol))) {                                                 \
            fprintf(stderr, "%s:%d: %s = %.9g, expected %.9g (tol %g)\n", __FILE__,      \
                    __LINE__, #got, g_, w_, (double)(tol));                              \
            check_failures++;                                                            \
        }                                                                                \
    } while (0)

/* The message must contain the needle. */
#define CHECK_MSG(msg, needle)                                                           \
    do {                                                                                 \
        check_count++;                                                                   \
        if (!strstr((msg), (needle))) {                                                  \
            fprintf(stderr, "%s:%d: message '%s' lacks '%s'\n", __FILE__, __LINE__,      \
                    (msg), (needle));                                                    \
            check_failures++;                                                            \
        }                                                                                \
    } while (0)

static inline int check_exit(const char *name)
{
    printf("%s: %d checks, %d failed\n", name, check_count, check_failures);
    return check_failures ? 1 : 0;
}

#endif
