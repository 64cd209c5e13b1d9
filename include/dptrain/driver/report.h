/* report: what dptrain tells its user on rank 0: the banner (ranks, threads, model, data,
 * batch split, optimizer), one line per epoch, the replica check at the end. The loop
 * hands over figures already reduced across ranks; nothing here does arithmetic that
 * decides the training. */
#ifndef DPTRAIN_REPORT_H
#define DPTRAIN_REPORT_H

#include "dptrain/data/data.h"
#include "dptrain/data/plan.h"
#include "dptrain/dist/comm.h"
#include "dptrain/driver/cli.h"
#include "dptrain/driver/metrics.h"
#include "dptrain/net/model.h"
#include "dptrain/util/error.h"

typedef struct {
    const dp_config *cfg;
    const dp_model *model;
    const dp_filelist *train_files, *test_files; /* test_files NULL: no test set */
    const dp_plan *plan;       /* the data order and this rank's part */
    int threads;
    long steps_per_epoch, total_steps;
    int epochs;
    int buckets;               /* gradient buckets (0 on one rank or through shared memory) */
    int cores;                 /* the cores rank 0 may run on (its CPU affinity) */
    int shared;                /* the gradients are summed through shared memory */
    const char *why_not_shared; /* else why not ("" or NULL: nothing to say) */
    int thread_balancing;      /* each rank's threads balance (--balance) */
} dp_banner;

/* Collective (gathers host names); rank 0 prints unless --quiet. */
void report_banner(const dp_comm *c, const dp_banner *b);
/* The epoch line of rank 0. */
void report_epoch(const dp_epoch_record *r);
/* Every rank must hold the same weights; a difference is a bug worth stopping for.
 * Collective; prints the checksum on rank 0 unless quiet. */
int report_replicas(const dp_comm *c, const dp_model *m, int quiet, dp_err *err);
/* FNV-1a over the bytes of the weights. */
uint64_t weights_checksum(const dp_model *m);

#endif
