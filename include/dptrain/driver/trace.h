/* trace: --trace FILE, a timeline of every rank over a window of steps as Chrome
 * trace-event JSON (Perfetto, chrome://tracing; docs/trace.md).
 *
 * Each rank records spans (begin and end in its comm_time() clock) into a buffer sized
 * once for the window, so recording allocates nothing and costs two clock reads per span;
 * spans beyond the buffer are counted, not kept. At the end rank 0 gathers every rank's
 * spans, moves them onto its own clock (each rank's offset measured by ping-pong when
 * the trace starts and again when it is written, interpolated in between), and writes one
 * file: a process per rank, a track for its main thread and one for each gradient bucket's
 * reductions. The trace knows the model only for the names of its layers. */
#ifndef DPTRAIN_TRACE_H
#define DPTRAIN_TRACE_H

#include "dptrain/dist/comm.h"
#include "dptrain/dist/gradsync.h"
#include "dptrain/net/model.h"
#include "dptrain/util/error.h"

#include <stdint.h>

typedef enum {
    TRACE_STEP, /* arg: the step (1-based) */
    TRACE_DATA, /* batch assembly */
    TRACE_FORWARD,
    TRACE_BACKWARD,
    TRACE_LAYER_FWD, /* arg: the layer */
    TRACE_LAYER_BWD, /* arg: the layer */
    TRACE_LOSS,
    TRACE_WAIT,   /* waiting for the gradient reduction (and the stop vote) */
    TRACE_UPDATE, /* gradient check and optimizer step */
    TRACE_BUCKET, /* arg: the bucket; its reduction from start to completion */
    TRACE_EVAL,
    TRACE_CHECKPOINT,
    TRACE_KINDS
} dp_trace_kind;

/* Tracks of a rank: its main thread, then one per gradient bucket (their reductions
 * overlap each other, and a track's spans must nest). */
enum { TRACE_TRACK_MAIN, TRACE_TRACK_BUCKETS };

typedef struct {
    double begin, end; /* comm_time() of the rank that recorded it */
    int32_t arg;
    int16_t kind, track;
} dp_trace_event;

typedef struct dp_trace dp_trace;

/* Steps first..last (1-based); the buffer holds `steps` of them (the window, or the steps
 * the run has left when fewer) of events_per_step spans. Rank 0 opens path now, so that a
 * bad path fails before training. Not collective (agree on the result). */
int trace_create(dp_trace **t, const dp_comm *c, const char *path, long first, long last,
                 long steps, int events_per_step, int buckets, dp_err *err);
void trace_free(dp_trace *t);
/* Collective: the first clock-offset measurement. */
void trace_start(dp_trace *t, const dp_comm *c);
/* Step `step` (1-based) begins: record from the first step of the window until the next
 * step after its last (the evaluation and checkpoint after the last step belong to it). */
void trace_step_begin(dp_trace *t, long step);
int trace_on(const dp_trace *t);
void trace_add(dp_trace *t, int kind, int track, int arg, double begin, double end);
/* The bucket hook (gradsync_observe): a reduction started (done 0) or completed. */
void trace_bucket(void *t, int bucket, int done);
/* Collective: gather, align and write the file (rank 0); agreed. */
int trace_write(dp_trace *t, const dp_comm *c, const dp_model *m, const dp_gradsync *gs,
                dp_err *err);

#endif
