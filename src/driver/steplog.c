/* steplog: step records for --log-every (steplog.h). */
#include "dptrain/driver/steplog.h"

#include "dptrain/dist/comm.h"

#include <string.h>

const char *const steplog_phase_names[NPHASES] = {"data", "forward", "backward", "wait", "update"};

void steplog_init(dp_steplog *l, long every, FILE *out, int ranks)
{
    memset(l, 0, sizeof *l);
    l->every = every;
    l->out = out;
    l->ranks = ranks;
}

void steplog_add(dp_steplog *l, const double *phase, double t_start, double loss, int correct,
                 int samples)
{
    if (l->steps == 0)
        l->t_first = t_start;
    l->steps++;
    l->loss += loss;
    l->correct += correct;
    l->samples += samples;
    for (int k = 0; k < NPHASES; k++)
        l->phase[k] += phase[k];
}

int steplog_due(const dp_steplog *l, long step, int epoch_end)
{
    return l->every > 0 && l->steps > 0 && (epoch_end || step % l->every == 0);
}

/* The sums and maxima one record reduces. */
typedef struct {
    double loss, correct, samples, phase[NPHASES];
} window_sums;
typedef struct {
    double phase[NPHASES], seconds; /* seconds: the window's wall time on the rank */
} window_max;
_Static_assert(sizeof(window_sums) == (3 + NPHASES) * sizeof(double), "reduced as doubles");
_Static_assert(sizeof(window_max) == (1 + NPHASES) * sizeof(double), "reduced as doubles");

static void print_record(dp_steplog *l, const window_sums *s, const window_max *m, long step,
                         int epoch, double lr, double wall)
{
    const double n = (double)l->steps, ms = 1000.0 / n, P = l->ranks;
    FILE *f = l->out;
    fprintf(f,
            "{\"type\":\"step\",\"epoch\":%d,\"step\":%ld,\"steps\":%ld,\"lr\":%.6g,"
            "\"train_loss\":%.9g,\"train_accuracy\":%.9g,\"samples\":%.0f,"
            "\"images_per_sec\":%.2f,\"seconds\":%.6f,\"step_ms\":%.4f,",
            epoch, step, l->steps, lr, s->loss / s->samples, s->correct / s->samples, s->samples,
            m->seconds > 0 ? s->samples / m->seconds : 0.0, m->seconds, m->seconds * ms);
    for (int k = 0; k < NPHASES; k++) /* mean over ranks of the ms per step */
        fprintf(f, "\"%s_ms\":%.4f,", steplog_phase_names[k], s->phase[k] * ms / P);
    for (int k = 0; k < NPHASES; k++) /* the rank that took longest */
        fprintf(f, "\"max_%s_ms\":%.4f,", steplog_phase_names[k], m->phase[k] * ms);
    fprintf(f, "\"wall_seconds\":%.3f,\"ranks\":%d}\n", wall, l->ranks);
    if (fflush(f) != 0 || ferror(f))
        l->failed = 1;
}

void steplog_write(dp_steplog *l, long step, int epoch, double lr, double wall, double now)
{
    window_sums s = {l->loss, l->correct, l->samples, {0}};
    window_max m = {{0}, now - l->t_first};
    memcpy(s.phase, l->phase, sizeof s.phase);
    memcpy(m.phase, l->phase, sizeof m.phase);
    comm_allreduce_sum_double((double *)&s, (int)(sizeof s / sizeof(double)));
    comm_allreduce_max_doubles((double *)&m, (int)(sizeof m / sizeof(double)));
    if (l->out && !l->failed)
        print_record(l, &s, &m, step, epoch, lr, wall);
    l->steps = 0;
    l->loss = l->correct = l->samples = 0.0;
    memset(l->phase, 0, sizeof l->phase);
}
