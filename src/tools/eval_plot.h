/* eval_plot: dptrain-eval --plot FILE.png, the confusion matrix as a heat map (rows
 * normalised: each true class's predictions as fractions of it, the counts printed in
 * the cells) beside the accuracy of each class as bars, drawn by gnuplot (pngcairo).
 * Rank 0 alone; no MPI. */
#ifndef DPTRAIN_EVAL_PLOT_H
#define DPTRAIN_EVAL_PLOT_H

#include "dptrain/util/error.h"

/* Whether a gnuplot with the pngcairo terminal can be run, and path can be written:
 * checked before evaluating, so that a missing plotter fails early. */
int eval_plot_check(const char *path, dp_err *err);

/* cm[K * K]: counts, [true][predicted]. title: one line above the plots. */
int eval_plot_write(const char *path, const double *cm, int K, const char *title, dp_err *err);

#endif
