/* observe: the loop's marks to the step log and the trace (observe.h). */
#include "dptrain/driver/observe.h"

#include "dptrain/driver/steplog.h"
#include "dptrain/driver/trace.h"

#include <stdlib.h>
#include <string.h>

struct dp_observe {
    dp_steplog log;     /* log.every 0: off */
    dp_trace *trace;    /* NULL: off */
    double backward_at; /* this step's first backward began; 0: not yet */
    double layer_at;    /* the layer (or loss) under way began */
    int nlayers;        /* the pass reports the loss as layer nlayers */
};

int observe_create(dp_observe **out, const dp_comm *c, const dp_config *cfg, FILE *metrics,
                   const dp_model *m, dp_gradsync *gs, long steps_left, int groups,
                   dp_err *err)
{
    *out = NULL;
    if (!cfg->log_every && !cfg->trace)
        return 0;
    dp_observe *o = dp_calloc(1, sizeof *o, "observer", err);
    if (!o)
        return -1;
    *out = o;
    o->nlayers = m->nlayers;
    steplog_init(&o->log, cfg->log_every, metrics, c->size);
    if (!cfg->trace)
        return 0;
    long steps = cfg->trace_last - cfg->trace_first + 1; /* the buffer's: no more than run */
    if (steps_left >= 0 && steps > steps_left)
        steps = steps_left > 0 ? steps_left : 1;
    const int buckets = gradsync_buckets(gs);
    /* step, wait, update, an evaluation and a checkpoint; per pass (--accumulate) batch,
     * forward, backward, loss and each layer's forward; each layer's backward once per
     * group of samples the rank computes; each bucket */
    const int passes = cfg->accumulate;
    const int per_step = 5 + passes * (4 + m->nlayers) + (groups + 1) * m->nlayers + buckets;
    if (trace_create(&o->trace, c, cfg->trace, cfg->trace_first, cfg->trace_last, steps, per_step,
                     buckets, err))
        return -1;
    if (buckets > 0)
        gradsync_observe(gs, trace_bucket, o->trace);
    return 0;
}

void observe_start(dp_observe *o, const dp_comm *c)
{
    if (o && o->trace)
        trace_start(o->trace, c);
}

void observe_free(dp_observe *o)
{
    if (!o)
        return;
    trace_free(o->trace);
    free(o);
}

void observe_layer(void *ctx, int layer, int backward, int end)
{
    dp_observe *o = ctx;
    if (!o->trace || !trace_on(o->trace)) { /* the step log needs backward's start alone */
        if (backward && !end && o->backward_at == 0.0)
            o->backward_at = comm_time();
        return;
    }
    const double now = comm_time();
    if (backward && !end && o->backward_at == 0.0)
        o->backward_at = now;
    if (!end) {
        o->layer_at = now;
        return;
    }
    const int kind = backward              ? TRACE_LAYER_BWD
                     : layer == o->nlayers ? TRACE_LOSS
                                           : TRACE_LAYER_FWD;
    trace_add(o->trace, kind, TRACE_TRACK_MAIN, layer, o->layer_at, now);
}

void observe_step_begin(dp_observe *o, long step)
{
    if (!o)
        return;
    o->backward_at = 0.0;
    if (o->trace)
        trace_step_begin(o->trace, step);
}

void observe_step_end(dp_observe *o, long step, const dp_step_marks *mk, double loss, int correct,
                      int samples)
{
    if (!o)
        return;
    /* no backward (every layer frozen): the pass was all forward */
    const double bwd = o->backward_at > 0.0 ? o->backward_at : mk->pass_end;
    const double phase[NPHASES] = {mk->data_end - mk->start, bwd - mk->data_end, mk->pass_end - bwd,
                                   mk->wait_end - mk->pass_end, mk->end - mk->wait_end};
    if (o->log.every)
        steplog_add(&o->log, phase, mk->start, loss, correct, samples);
    dp_trace *t = o->trace;
    if (!t || !trace_on(t))
        return;
    trace_add(t, TRACE_STEP, TRACE_TRACK_MAIN, (int)step, mk->start, mk->end);
    trace_add(t, TRACE_DATA, TRACE_TRACK_MAIN, 0, mk->start, mk->data_end);
    trace_add(t, TRACE_FORWARD, TRACE_TRACK_MAIN, 0, mk->data_end, bwd);
    trace_add(t, TRACE_BACKWARD, TRACE_TRACK_MAIN, 0, bwd, mk->pass_end);
    trace_add(t, TRACE_WAIT, TRACE_TRACK_MAIN, 0, mk->pass_end, mk->wait_end);
    trace_add(t, TRACE_UPDATE, TRACE_TRACK_MAIN, 0, mk->wait_end, mk->end);
}

int observe_after_step(dp_observe *o, long step, int epoch, double lr, double wall, int epoch_end,
                       const dp_comm *c, dp_err *err)
{
    if (!o || !o->log.every)
        return 0;
    if (steplog_due(&o->log, step, epoch_end))
        steplog_write(&o->log, step, epoch, lr, wall, comm_time());
    if (!epoch_end)
        return 0;
    int rc = o->log.failed ? dp_fail(err, "--metrics: writing a step record failed") : 0;
    return comm_agree(c, rc, err);
}

void observe_span(dp_observe *o, dp_observe_span what, double begin, double end)
{
    if (o && o->trace)
        trace_add(o->trace, what == OBSERVE_EVAL ? TRACE_EVAL : TRACE_CHECKPOINT, TRACE_TRACK_MAIN,
                  0, begin, end);
}

int observe_finish(dp_observe *o, const dp_comm *c, const dp_model *m, const dp_gradsync *gs,
                   dp_err *err)
{
    if (!o || !o->trace)
        return 0;
    return trace_write(o->trace, c, m, gs, err);
}
