/* sums: deterministic reductions shared by the net's gradient guard and the optimizers'
 * norms. Eight running sums in a fixed order break the add dependency chain (4-8x faster
 * than one) and still give the same bits every time, whatever the caller's threads. */
#ifndef DPTRAIN_SUMS_H
#define DPTRAIN_SUMS_H

#include <stddef.h>

/* The sum of x[i]^2 over n floats, in double: lane i mod 8, then the lanes pairwise. */
double dp_sum_squares(const float *x, size_t n);

#endif
