/* metrics: per-epoch records as JSON Lines ("type":"epoch"; step records, "type":"step",
 * are steplog.h's; with --balance a last "type":"balance"), after one host record
 * ("type":"host") per start of a run: the time, host name, CPU model, online cores and
 * the load averages (1, 5, 15 min) as it started.
 * A resumed run appends its own host record before its records.
 *
 * Only rank 0 writes; the caller reduces the figures across ranks first. The metrics
 * file is opened for appending, so earlier records (of an earlier or resumed run) are
 * never lost. */
#ifndef DPTRAIN_METRICS_H
#define DPTRAIN_METRICS_H

#include <stdint.h>
#include <stdio.h>

#include "dptrain/util/error.h"

typedef struct {
    int epoch;         /* 1-based */
    long step;         /* optimizer steps done so far */
    int partial;       /* the run stopped before the end of this epoch (--steps) */
    double lr;         /* learning rate of the epoch's last step */
    double train_loss, train_accuracy; /* over the epoch's training samples, all ranks */
    int has_test;
    double test_loss, test_accuracy;
    double images_per_sec; /* training images (all ranks) per second of training time */
    double seconds;        /* training time of the epoch (without evaluation) */
    double comm_seconds;   /* time in gradient allreduce, mean over ranks */
    double data_seconds;   /* time assembling batches, mean over ranks */
    double compute_seconds;/* forward, backward and update, mean over ranks */
    double eval_seconds;
    double wall_seconds;   /* since the start of training */
    double max_rss_mib;    /* peak resident memory of the largest rank */
    int ranks, threads, global_batch;
    unsigned long long weights_checksum; /* of the weights after the epoch (report.h) */
} dp_epoch_record;

int metrics_open(FILE **f, const char *path, dp_err *err);
int metrics_write(FILE *f, const dp_epoch_record *r, dp_err *err);
/* The run's balance record ("type":"balance", balance.h): for each of `ranks` ranks the
 * samples it trained on and its own samples per second, v[3r] and v[3r + 1]; where the
 * threads balanced (threads > 0), rank 0's threads' shares and each rank's least share
 * against an even one, in millionths, v[3r + 2]. */
int metrics_write_balance(FILE *f, int ranks, int every, const int64_t *v, int threads,
                          const double *shares, dp_err *err);

#endif
