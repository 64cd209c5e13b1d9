/* progress: what rank 0 shows while an epoch runs. On a terminal, a bar redrawn in place
 * (epoch and step, images/s, loss, the time left in the epoch and in the run); where the
 * output is kept (a file, a pipe to tee or less, a Slurm output file), a plain line at
 * each quarter of an epoch long enough to need one, and never a control character.
 *
 * Under a launcher, rank 0's stderr is a pipe to the launcher, which copies it to its own
 * stderr: what counts is where that goes. progress_where follows rank 0's stderr: a
 * terminal itself (no launcher, srun --pty), or a pipe read by a launcher beside it
 * (mpirun, mpiexec, orterun, prterun, hydra's proxy, ...: an ancestor process holding the
 * pipe's other end) whose own stderr is a terminal. Anything else is kept output. Only
 * rank 0 calls these; the progress state is its own (no MPI). */
#ifndef DPTRAIN_PROGRESS_H
#define DPTRAIN_PROGRESS_H

#include <stddef.h>
#include <stdio.h>

typedef enum { PROGRESS_OFF, PROGRESS_BAR, PROGRESS_LINES } dp_progress_mode;

/* Where this process's stderr ends up: 1 a terminal (*columns its width, 80 when
 * unknown), 0 anything else. how[len] says why, for messages and tests. */
int progress_where(int *columns, char *how, size_t len);

/* An epoch shorter than this (projected from its first quarter) gets no progress lines:
 * its epoch line follows soon enough. DPTRAIN_TEST_PROGRESS_LINES_S overrides (tests). */
#define PROGRESS_LINES_MIN_EPOCH_S 30.0

typedef struct {
    dp_progress_mode mode;
    FILE *bar, *lines; /* the bar on stderr, the lines on stdout (beside the epoch lines) */
    int columns;       /* the bar's line stays shorter than this */
    int epochs;        /* the run's epochs; 0: unknown */
    long total_steps;  /* the run's steps */
    int global_batch;
    double min_epoch_s; /* lines only for epochs projected longer than this */
    /* this epoch */
    int epoch;
    long first, steps; /* steps done when it started (resume), steps it has */
    double t_start, last_draw;
    int quarter, drawn; /* the last quarter printed; the bar's length on screen */
    int bar_width;      /* the bar's characters: 40 at most, narrowing to fit, 0 for none */
    double t_end, gap;  /* the last epoch's end; from there to the next epoch (evaluation,
                         * checkpoint): counted once per epoch left in the run estimate */
} dp_progress;

/* forced: -1 automatic (progress_where), 0 off, 1 the bar. quiet: off. */
void progress_init(dp_progress *p, int forced, int quiet, int epochs, long total_steps,
                   int global_batch);
void progress_epoch_begin(dp_progress *p, int epoch, long first, long steps, double now);
/* After a step: done of the epoch's steps are done, step of the run's; loss is the mean
 * so far in the epoch (rank 0's samples). Redraws at most 4 times a second. */
void progress_step(dp_progress *p, long done, long step, double loss, double now);
/* Clears the bar before the epoch line. */
void progress_epoch_end(dp_progress *p, double now);

#endif
