/* trace: recording spans into a buffer made once, and the collective end (trace.h): the
 * clock offsets, the gather to rank 0, and the Chrome trace-event JSON it writes. */
#include "dptrain/driver/trace.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { CLOCK_ROUNDS = 32 };

struct dp_trace {
    int on;
    long first, last;
    int rank, size;
    FILE *out; /* rank 0 */
    const char *path;
    dp_trace_event *ev;
    size_t n, cap;
    long dropped;
    double *bucket_start; /* [buckets] */
    int buckets;
    /* rank 0: the offsets of every rank's clock (theirs - rank 0's) at two moments */
    double t_a, t_b, *off_a, *off_b, *err_a, *err_b;
};

int trace_create(dp_trace **out, const dp_comm *c, const char *path, long first, long last,
                 long steps, int events_per_step, int buckets, dp_err *err)
{
    dp_trace *t = dp_calloc(1, sizeof *t, "trace", err);
    *out = t;
    if (!t)
        return -1;
    t->first = first;
    t->last = last;
    t->rank = c->rank;
    t->size = c->size;
    t->path = path;
    t->buckets = buckets;
    /* every step's spans, plus an evaluation and a checkpoint per step at most */
    t->cap = (size_t)steps * (size_t)events_per_step + 16;
    t->ev = dp_calloc(t->cap, sizeof *t->ev, "trace buffer", err);
    t->bucket_start = dp_calloc((size_t)buckets + 1, sizeof(double), "trace", err);
    if (!t->ev || !t->bucket_start)
        return -1;
    if (c->rank != 0)
        return 0;
    const size_t P = (size_t)c->size;
    t->off_a = dp_calloc(4 * P, sizeof(double), "trace clocks", err);
    if (!t->off_a)
        return -1;
    t->off_b = t->off_a + P;
    t->err_a = t->off_a + 2 * P;
    t->err_b = t->off_a + 3 * P;
    t->out = fopen(path, "w");
    if (!t->out)
        return dp_fail(err, "--trace %s: cannot create the file: %s", path, strerror(errno));
    return 0;
}

void trace_free(dp_trace *t)
{
    if (!t)
        return;
    if (t->out)
        fclose(t->out);
    free(t->ev);
    free(t->bucket_start);
    free(t->off_a);
    free(t);
}

void trace_start(dp_trace *t, const dp_comm *c)
{
    t->t_a = comm_time();
    comm_clock_offsets(c, CLOCK_ROUNDS, t->off_a, t->err_a);
}

int trace_on(const dp_trace *t)
{
    return t->on;
}

void trace_step_begin(dp_trace *t, long step)
{
    t->on = step >= t->first && step <= t->last;
}

void trace_add(dp_trace *t, int kind, int track, int arg, double begin, double end)
{
    if (!t->on)
        return;
    if (t->n == t->cap) {
        t->dropped++;
        return;
    }
    t->ev[t->n++] = (dp_trace_event){begin, end, arg, (int16_t)kind, (int16_t)track};
}

void trace_bucket(void *ctx, int bucket, int done)
{
    dp_trace *t = ctx;
    if (!t->on || bucket < 0 || bucket >= t->buckets)
        return;
    double now = comm_time();
    if (!done)
        t->bucket_start[bucket] = now;
    else
        trace_add(t, TRACE_BUCKET, TRACE_TRACK_BUCKETS + bucket, bucket, t->bucket_start[bucket],
                  now);
}

/* ---- writing ----------------------------------------------------------------------------- */

/* What rank 0 needs to write the file. */
typedef struct {
    const dp_trace *t;
    const dp_model *m;
    const dp_gradsync *gs;
    const dp_trace_event *all; /* every rank's events, rank after rank */
    const int64_t *count;      /* events per rank */
    char (*hosts)[64];
    double t0;    /* the earliest span, on rank 0's clock */
    double *mono; /* [size]: each rank's CLOCK_MONOTONIC - comm_time() */
} trace_doc;

/* CLOCK_MONOTONIC minus comm_time(): a constant of the process (Open MPI's MPI_Wtime counts
 * from the process's own start). Ranks on one host share CLOCK_MONOTONIC, so the
 * difference of two ranks' constants is their true offset: a check of the estimate. */
static double mono_minus_wtime(void)
{
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    double w = comm_time();
    clock_gettime(CLOCK_MONOTONIC, &b);
    return 0.5 * ((double)a.tv_sec + (double)b.tv_sec) +
           0.5e-9 * ((double)a.tv_nsec + (double)b.tv_nsec) - w;
}

/* How rank r's offset is applied: a clock that moved by more than the two measurements'
 * errors allow drifts, and its offset is interpolated between them; otherwise the offset
 * is taken as constant, from the more precise of the two. */
typedef enum { OFFSET_START, OFFSET_END, OFFSET_DRIFT } offset_use;

static offset_use offset_used(const dp_trace *t, int r)
{
    if (fabs(t->off_b[r] - t->off_a[r]) > t->err_a[r] + t->err_b[r])
        return OFFSET_DRIFT;
    return t->err_a[r] <= t->err_b[r] ? OFFSET_START : OFFSET_END;
}

/* The offset (and its error bound) that applies at the end of the trace. */
static double applied(const dp_trace *t, int r, int error)
{
    int start = offset_used(t, r) == OFFSET_START;
    return error ? (start ? t->err_a : t->err_b)[r] : (start ? t->off_a : t->off_b)[r];
}

/* Rank r's time `when` on rank 0's clock. */
static double aligned(const dp_trace *t, int r, double when)
{
    switch (offset_used(t, r)) {
    case OFFSET_START:
        return when - t->off_a[r];
    case OFFSET_END:
        return when - t->off_b[r];
    default:
        break;
    }
    double span = t->t_b - t->t_a, f = span > 0 ? (when - t->t_a) / span : 0.0;
    f = f < 0 ? 0 : f > 1 ? 1 : f;
    return when - (t->off_a[r] + f * (t->off_b[r] - t->off_a[r]));
}

static void span_name(const trace_doc *d, const dp_trace_event *e, char *name, size_t len,
                      const char **cat)
{
    static const char *const cats[TRACE_KINDS] = {
        "step",    "data", "forward", "backward",  "forward",    "backward",
        "forward", "wait", "update",  "allreduce", "evaluation", "checkpoint"};
    static const char *const fixed[TRACE_KINDS] = {
        NULL,     "batch", "forward",    "backward",  NULL, NULL, "loss", "wait for gradients",
        "update", NULL,    "evaluation", "checkpoint"};
    *cat = cats[e->kind];
    if (fixed[e->kind])
        snprintf(name, len, "%s", fixed[e->kind]);
    else if (e->kind == TRACE_STEP)
        snprintf(name, len, "step %d", e->arg);
    else if (e->kind == TRACE_BUCKET)
        snprintf(name, len, "bucket %d (%.0f KiB)", e->arg,
                 gradsync_bucket_bytes(d->gs, e->arg) / 1024.0);
    else
        snprintf(name, len, "%s %s", d->m->layers[e->arg].name,
                 e->kind == TRACE_LAYER_FWD ? "forward" : "backward");
}

static void write_event(FILE *f, const trace_doc *d, int r, const dp_trace_event *e)
{
    char name[96];
    const char *cat;
    span_name(d, e, name, sizeof name, &cat);
    /* whole nanoseconds, so that a span nested in another stays inside it when printed */
    long long b = llround((aligned(d->t, r, e->begin) - d->t0) * 1e9);
    long long en = llround((aligned(d->t, r, e->end) - d->t0) * 1e9);
    long long dur = en > b ? en - b : 0;
    fprintf(f,
            ",\n{\"ph\":\"X\",\"pid\":%d,\"tid\":%d,\"name\":\"%s\",\"cat\":\"%s\","
            "\"ts\":%lld.%03lld,\"dur\":%lld.%03lld",
            r, e->track, name, cat, b / 1000, llabs(b % 1000), dur / 1000, dur % 1000);
    if (e->kind == TRACE_STEP || e->kind == TRACE_LAYER_FWD || e->kind == TRACE_LAYER_BWD)
        fprintf(f, ",\"args\":{\"%s\":%d}", e->kind == TRACE_STEP ? "step" : "layer", e->arg);
    else if (e->kind == TRACE_BUCKET)
        fprintf(f, ",\"args\":{\"bucket\":%d,\"bytes\":%zu}", e->arg,
                gradsync_bucket_bytes(d->gs, e->arg));
    fputc('}', f);
}

/* A host name as a JSON string's content (they are letters, digits, '-' and '.'). */
static void clean_host(char *h)
{
    for (; *h; h++)
        if (*h == '"' || *h == '\\' || (unsigned char)*h < 0x20)
            *h = '?';
}

static void write_metadata(FILE *f, const trace_doc *d, int r)
{
    clean_host(d->hosts[r]);
    fprintf(f,
            ",\n{\"ph\":\"M\",\"pid\":%d,\"name\":\"process_name\",\"args\":{\"name\":"
            "\"rank %d (%s)\"}}",
            r, r, d->hosts[r]);
    fprintf(f,
            ",\n{\"ph\":\"M\",\"pid\":%d,\"name\":\"process_sort_index\",\"args\":"
            "{\"sort_index\":%d}}",
            r, r);
    fprintf(f,
            ",\n{\"ph\":\"M\",\"pid\":%d,\"tid\":%d,\"name\":\"thread_name\",\"args\":"
            "{\"name\":\"main thread\"}}",
            r, TRACE_TRACK_MAIN);
    for (int b = 0; b < d->t->buckets; b++) /* reductions overlap: a track each */
        fprintf(f,
                ",\n{\"ph\":\"M\",\"pid\":%d,\"tid\":%d,\"name\":\"thread_name\",\"args\":"
                "{\"name\":\"reduction of bucket %d (%.0f KiB)\"}}",
                r, TRACE_TRACK_BUCKETS + b, b, gradsync_bucket_bytes(d->gs, b) / 1024.0);
}

/* "[1.2,3.4]": microseconds, one per rank. */
static void write_us(FILE *f, const char *key, const double *v, int n)
{
    fprintf(f, "\"%s\":[", key);
    for (int r = 0; r < n; r++)
        fprintf(f, "%s%.3f", r ? "," : "", v[r] * 1e6);
    fputc(']', f);
}

static void write_other(FILE *f, const trace_doc *d, int64_t total, long dropped)
{
    const dp_trace *t = d->t;
    fprintf(f,
            "\n],\n\"displayTimeUnit\":\"ms\",\n\"otherData\":{\"program\":\"dptrain\","
            "\"ranks\":%d,\"first_step\":%ld,\"last_step\":%ld,\"events\":%lld,"
            "\"dropped_events\":%ld,\"clock\":{\"method\":\"each rank's MPI_Wtime offset "
            "from rank 0's by %d ping-pongs (the shortest round trip), at the start and at "
            "the end; constant (the more precise) when they differ by less than their "
            "errors, else interpolated linearly\",",
            t->size, t->first, t->last, (long long)total, dropped, CLOCK_ROUNDS);
    write_us(f, "offset_start_us", t->off_a, t->size);
    fputc(',', f);
    write_us(f, "offset_end_us", t->off_b, t->size);
    fputc(',', f);
    write_us(f, "error_start_us", t->err_a, t->size);
    fputc(',', f);
    write_us(f, "error_end_us", t->err_b, t->size);
    /* ranks on rank 0's host: the true offset, and how far the estimate at the end was */
    fputs(",\"same_host_true_offset_us\":[", f);
    for (int r = 0; r < t->size; r++)
        if (strcmp(d->hosts[r], d->hosts[0]) == 0)
            fprintf(f, "%s%.3f", r ? "," : "", (d->mono[0] - d->mono[r]) * 1e6);
        else
            fprintf(f, "%snull", r ? "," : "");
    fputs("],\"same_host_error_us\":[", f);
    for (int r = 0; r < t->size; r++)
        if (strcmp(d->hosts[r], d->hosts[0]) == 0)
            fprintf(f, "%s%.3f", r ? "," : "",
                    (applied(t, r, 0) - (d->mono[0] - d->mono[r])) * 1e6);
        else
            fprintf(f, "%snull", r ? "," : "");
    for (int error = 0; error < 2; error++) {
        fprintf(f, "],\"applied_%s_us\":[", error ? "error" : "offset");
        for (int r = 0; r < t->size; r++)
            fprintf(f, "%s%.3f", r ? "," : "", applied(t, r, error) * 1e6);
    }
    fputs("],\"offset_used\":[", f);
    for (int r = 0; r < t->size; r++)
        fprintf(f, "%s\"%s\"", r ? "," : "",
                (const char *[]){"start", "end", "interpolated"}[offset_used(t, r)]);
    fprintf(f, "],\"seconds_between\":%.3f}}}\n", t->t_b - t->t_a);
}

static int write_doc(FILE *f, trace_doc *d, long dropped)
{
    const dp_trace *t = d->t;
    int64_t total = 0;
    d->t0 = INFINITY;
    for (int r = 0; r < t->size; r++) {
        for (int64_t i = 0; i < d->count[r]; i++)
            d->t0 = fmin(d->t0, aligned(t, r, d->all[total + i].begin));
        total += d->count[r];
    }
    if (!isfinite(d->t0))
        d->t0 = t->t_a;
    fprintf(f, "{\"traceEvents\":[\n{\"ph\":\"M\",\"pid\":0,\"name\":\"trace_start\","
               "\"args\":{\"note\":\"ts in microseconds from the earliest span\"}}");
    const dp_trace_event *e = d->all;
    for (int r = 0; r < t->size; r++) {
        write_metadata(f, d, r);
        for (int64_t i = 0; i < d->count[r]; i++)
            write_event(f, d, r, e++);
    }
    write_other(f, d, total, dropped);
    return fflush(f) != 0 || ferror(f) ? -1 : 0;
}

/* Rank 0: every rank's events into d->all; the counts first. Collective, agreed. */
static int gather(dp_trace *t, const dp_comm *c, trace_doc *d, int64_t *counts, long *dropped,
                  dp_err *err)
{
    const int P = c->size;
    int64_t mine[3] = {(int64_t)t->n, t->dropped, 0}, *got = counts, *bytes = counts + 3 * P,
            *per_rank = counts + 4 * P, total = 0;
    double mono = mono_minus_wtime();
    memcpy(&mine[2], &mono, sizeof mono);
    comm_gather_i64(mine, 3, c->rank == 0 ? got : NULL);
    int rc = 0;
    if (c->rank == 0) {
        for (int r = 0; r < P; r++) {
            per_rank[r] = got[3 * r];
            bytes[r] = got[3 * r] * (int64_t)sizeof(dp_trace_event);
            total += got[3 * r];
            *dropped += (long)got[3 * r + 1];
            memcpy(&d->mono[r], &got[3 * r + 2], sizeof(double));
        }
        d->all = malloc((size_t)total * sizeof(dp_trace_event) + 1);
        d->count = per_rank;
        rc = d->all ? 0 : dp_fail(err, "--trace: out of memory for %lld spans", (long long)total);
    }
    if (comm_agree(c, rc, err))
        return -1;
    comm_gatherv_bytes(t->ev, (int64_t)(t->n * sizeof(dp_trace_event)), (void *)d->all,
                       c->rank == 0 ? bytes : NULL);
    return 0;
}

int trace_write(dp_trace *t, const dp_comm *c, const dp_model *m, const dp_gradsync *gs,
                dp_err *err)
{
    t->on = 0;
    t->t_b = comm_time();
    comm_clock_offsets(c, CLOCK_ROUNDS, t->off_b, t->err_b);
    trace_doc d = {t, m, gs, NULL, NULL, NULL, 0.0, NULL};
    int64_t *counts = NULL;
    long dropped = 0;
    int rc = 0;
    if (c->rank == 0) {
        counts = dp_calloc(5 * (size_t)c->size, sizeof(int64_t), "trace", err);
        d.hosts = dp_calloc((size_t)c->size, 64, "trace", err);
        d.mono = dp_calloc((size_t)c->size, sizeof(double), "trace", err);
        rc = counts && d.hosts && d.mono ? 0 : -1;
    }
    if (comm_agree(c, rc, err) == 0) {
        comm_gather_hosts(c, d.hosts);
        rc = gather(t, c, &d, counts, &dropped, err);
    } else {
        rc = -1;
    }
    if (rc == 0) {
        if (c->rank == 0 && write_doc(t->out, &d, dropped) != 0)
            rc = dp_fail(err, "--trace %s: write failed: %s", t->path, strerror(errno));
        if (c->rank == 0 && fclose(t->out) != 0 && rc == 0)
            rc = dp_fail(err, "--trace %s: write failed: %s", t->path, strerror(errno));
        t->out = NULL;
        rc = comm_agree(c, rc, err);
    }
    free((void *)d.all);
    free(counts);
    free(d.hosts);
    free(d.mono);
    return rc;
}
