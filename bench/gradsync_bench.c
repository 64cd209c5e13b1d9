/* gradsync_bench: the gradient sum over the ranks of one node as dptrain makes it after
 * backward, through shared memory (--reduction shm) against one MPI_Allreduce and the
 * rounding after it (--reduction mpi), on a model's tensors, the two alternating.
 *
 *   mpirun -n P build/bench/gradsync_bench [--reps N] [--models reference,nopool]
 *
 * Each round fills both gradsyncs with the same partials (one group per rank), then every
 * rank waits at a barrier, so the ranks' imbalance is left out, and times
 * gradsync_finish: the slowest rank's time, median and minimum over N rounds (default 51)
 * after 3 warm-up rounds. Also checks that both give the same bits. One line per model. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dptrain/dist/comm.h"
#include "dptrain/dist/gradsync.h"
#include "dptrain/driver/model_views.h"
#include "dptrain/net/model.h"
#include "dptrain/util/rng.h"

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

typedef struct {
    dp_gradsync *gs;
    float *grads;
    double *t;
} way;

/* One round on one way: a partial per segment, then the timed finish. */
static double round_of(way *w, const dp_model *m, const dp_grad_segment *seg, int nseg,
                       const float *partial, int groups)
{
    int again;
    double waited, t = 0.0;
    do {
        gradsync_begin(w->gs, groups);
        gradsync_pass(w->gs, 1);
        memcpy(w->grads, partial, m->size * sizeof(float));
        int lowest = seg[0].ready_after;
        for (int k = 0; k < nseg; k++) {
            gradsync_partial(w->gs, seg[k].ready_after);
            lowest = seg[k].ready_after < lowest ? seg[k].ready_after : lowest;
        }
        gradsync_final(w->gs, lowest);
        comm_allreduce_max_i64(0); /* a barrier */
        const double t0 = comm_time();
        again = gradsync_finish(w->gs, &waited);
        t = comm_allreduce_max_double(comm_time() - t0);
    } while (again);
    return t;
}

static int bench_model(const dp_comm *c, const char *name, int reps)
{
    dp_model m;
    dp_err err;
    if (model_build(&m, name, 1, 28, 28, 10, &err)) {
        fprintf(stderr, "gradsync_bench: %s\n", err.msg);
        return -1;
    }
    int nseg = 0;
    dp_grad_segment *seg = model_grad_segments(&m, &nseg, &err);
    dp_grad_tensor *t = calloc((size_t)m.nparams, sizeof *t);
    float *partial = calloc(m.size, sizeof *partial);
    way w[2] = {{0}, {0}};
    int rc = seg && t && partial ? 0 : -1;
    for (int i = 0; rc == 0 && i < m.nparams; i++)
        t[i] = (dp_grad_tensor){m.params[i].offset, m.params[i].count};
    dp_rng r;
    rng_seed(&r, 7, (uint64_t)c->rank, 3);
    for (size_t i = 0; rc == 0 && i < m.size; i++)
        partial[i] = (rng_uniform(&r) - 0.5f) * 1e-3f;
    for (int k = 0; rc == 0 && k < 2; k++) {
        w[k].grads = calloc(m.size, sizeof(float));
        w[k].t = calloc((size_t)reps, sizeof(double));
        rc = w[k].grads && w[k].t ? gradsync_create(&w[k].gs, w[k].grads, m.size, seg, nseg, t,
                                                      m.nparams, 256 * 1024, 0, c->size, &err)
                                  : -1;
    }
    char why[192] = "";
    if (rc == 0)
        rc = gradsync_share(w[1].gs, c, 1, why, sizeof why, &err);
    if (rc) {
        fprintf(stderr, "gradsync_bench: %s\n", err.msg);
        return -1;
    }
    const int groups = c->size;
    for (int i = -3; i < reps; i++)
        for (int k = 0; k < 2; k++) {
            double s = round_of(&w[k], &m, seg, nseg, partial, groups);
            if (i >= 0)
                w[k].t[i] = s;
        }
    const int same = memcmp(w[0].grads, w[1].grads, m.size * sizeof(float)) == 0;
    const int all_same = comm_allreduce_min_i64(same);
    for (int k = 0; k < 2; k++)
        qsort(w[k].t, (size_t)reps, sizeof(double), cmp_double);
    if (c->rank == 0)
        printf("%-10s %d ranks %9zu values: MPI_Allreduce+rounding %8.1f us (min %8.1f), "
               "shared memory %8.1f us (min %8.1f): %.2fx; same bits: %s\n",
               name, c->size, m.size, 1e6 * w[0].t[reps / 2], 1e6 * w[0].t[0],
               1e6 * w[1].t[reps / 2], 1e6 * w[1].t[0], w[0].t[reps / 2] / w[1].t[reps / 2],
               all_same ? "yes" : "NO");
    for (int k = 0; k < 2; k++) {
        gradsync_free(w[k].gs);
        free(w[k].grads);
        free(w[k].t);
    }
    free(seg);
    free(t);
    free(partial);
    model_free(&m);
    return all_same ? 0 : -1;
}

int main(int argc, char **argv)
{
    dp_comm c;
    dp_err err;
    if (comm_init(&argc, &argv, &c, &err)) {
        fprintf(stderr, "gradsync_bench: %s\n", err.msg);
        return 1;
    }
    int reps = 51;
    char models[256] = "reference,nopool";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--reps") && i + 1 < argc)
            reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--models") && i + 1 < argc)
            snprintf(models, sizeof models, "%s", argv[++i]);
        else {
            if (c.rank == 0)
                fprintf(stderr, "usage: mpirun -n P gradsync_bench [--reps N] "
                                "[--models a,b]\n");
            comm_finalize();
            return 2;
        }
    }
    if (reps < 1)
        reps = 1;
    int rc = 0;
    for (char *name = strtok(models, ","); name && rc == 0; name = strtok(NULL, ","))
        rc = bench_model(&c, name, reps);
    comm_finalize();
    return rc ? 1 : 0;
}
