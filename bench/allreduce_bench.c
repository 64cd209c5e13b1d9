/* allreduce_bench: MPI_Allreduce (sum of floats, as dptrain's gradient allreduce) time
 * against message size, on however many ranks it is started with. Rank 0 prints CSV:
 *
 *   ranks,bytes,iterations,seconds_median,seconds_min
 *
 * seconds_* are per allreduce, the slowest rank of each repetition, median and minimum
 * over 5 repetitions. Sizes default to powers of 4 from 4 bytes to 16 MiB plus the
 * gradient buffers of the two named models (225,034 and 4,738,826 floats).
 *
 * --as-dptrain times the reduction dptrain's gradient sum makes instead (src/dist/comm.c):
 * MPI_Iallreduce of int64 (the exact fixed-point sum) in place, then MPI_Wait. Open MPI
 * runs that through another component (libnbc, not tuned) and, in place, another
 * algorithm (a binomial tree up and down, not a ring or Rabenseifner's): the projection
 * models what dptrain does (scripts/project.py). Its default sizes are those models'
 * gradients in int64 (8 bytes per parameter); a size is rounded down to whole elements.
 * The CSV then says so in a last column, op (allreduce_float or iallreduce_inplace_int64).
 * --reduce-local times the additions alone (MPI_Reduce_local, int64 sum, each rank on its
 * own: op reduce_local_int64): what a reduction round adds to moving the bytes.
 *
 *   mpirun -n P build/bench/allreduce_bench [--sizes B1,B2,...] [--time-per-size S]
 *                                           [--as-dptrain | --reduce-local] [--no-header]
 *
 * A benchmark program, not part of dptrain: it calls MPI directly. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

enum { FLOAT_ALLREDUCE, AS_DPTRAIN, REDUCE_LOCAL };
static const char *const op_names[] = {"allreduce_float", "iallreduce_inplace_int64",
                                       "reduce_local_int64"};

/* One reduction of n elements: floats from buf into out, int64 in place (as dptrain), or
 * int64 added from buf into out on this rank only. */
static void reduce_once(int mode, void *buf, void *out, long n)
{
    if (mode == REDUCE_LOCAL) {
        MPI_Reduce_local(buf, out, (int)n, MPI_INT64_T, MPI_SUM);
    } else if (mode == AS_DPTRAIN) {
        MPI_Request req;
        MPI_Iallreduce(MPI_IN_PLACE, buf, (int)n, MPI_INT64_T, MPI_SUM, MPI_COMM_WORLD, &req);
        MPI_Wait(&req, MPI_STATUS_IGNORE);
    } else {
        MPI_Allreduce(buf, out, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    }
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    long sizes[64];
    int nsizes = 0, header = 1, mode = FLOAT_ALLREDUCE;
    double budget = 0.1; /* seconds per repetition and size */
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--sizes") && i + 1 < argc) {
            for (char *t = strtok(argv[++i], ","); t && nsizes < 64; t = strtok(NULL, ","))
                sizes[nsizes++] = strtol(t, NULL, 10);
        } else if (!strcmp(argv[i], "--time-per-size") && i + 1 < argc) {
            budget = strtod(argv[++i], NULL);
        } else if (!strcmp(argv[i], "--no-header")) {
            header = 0;
        } else if (!strcmp(argv[i], "--as-dptrain")) {
            mode = AS_DPTRAIN;
        } else if (!strcmp(argv[i], "--reduce-local")) {
            mode = REDUCE_LOCAL;
        } else {
            if (rank == 0)
                fprintf(stderr,
                        "allreduce_bench: unknown argument '%s' (see the comment at "
                        "the top of bench/allreduce_bench.c)\n",
                        argv[i]);
            MPI_Finalize();
            return 2;
        }
    }
    const int as_dptrain = mode != FLOAT_ALLREDUCE; /* int64 elements */
    if (nsizes == 0) {
        for (long b = 4; b <= 16L << 20; b *= 4)
            sizes[nsizes++] = b;
        sizes[nsizes++] = 225034L * (as_dptrain ? 8 : 4);
        sizes[nsizes++] = 4738826L * (as_dptrain ? 8 : 4);
    }
    for (int i = 0; i < nsizes; i++) {
        if (sizes[i] < (as_dptrain ? 8 : 4) || sizes[i] > (1L << 30)) {
            if (rank == 0)
                fprintf(stderr, "allreduce_bench: --sizes: %ld bytes is out of range [%d, 1 GiB]\n",
                        sizes[i], as_dptrain ? 8 : 4);
            MPI_Finalize();
            return 2;
        }
    }
    if (rank == 0 && header)
        printf("ranks,bytes,iterations,seconds_median,seconds_min,op\n");
    const size_t elem = as_dptrain ? 8 : 4;
    for (int s = 0; s < nsizes; s++) {
        long n = sizes[s] / (long)elem;
        /* zeros: an in-place sum repeated thousands of times stays in range */
        void *buf = calloc((size_t)n, elem), *out = calloc((size_t)n, elem);
        if (!buf || !out) {
            fprintf(stderr, "allreduce_bench: rank %d: out of memory for %ld bytes\n", rank,
                    sizes[s]);
            MPI_Abort(MPI_COMM_WORLD, 1);
        }
        /* warm up, then double the iterations until they take a tenth of the budget: the
         * estimate of one allreduce (the same on all ranks) sets the iterations */
        reduce_once(mode, buf, out, n);
        double one = 0.0;
        for (int k = 1;; k *= 2) {
            MPI_Barrier(MPI_COMM_WORLD);
            double t0 = MPI_Wtime();
            for (int j = 0; j < k; j++)
                reduce_once(mode, buf, out, n);
            double t = MPI_Wtime() - t0;
            MPI_Allreduce(MPI_IN_PLACE, &t, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
            if (t >= budget / 10 || k >= 4096) {
                one = t / k;
                break;
            }
        }
        int iters = one > 0 ? (int)(budget / one) : 1000;
        if (iters < 3)
            iters = 3;
        if (iters > 20000)
            iters = 20000;
        double rep[5];
        for (int r = 0; r < 5; r++) {
            MPI_Barrier(MPI_COMM_WORLD);
            double t0 = MPI_Wtime();
            for (int k = 0; k < iters; k++)
                reduce_once(mode, buf, out, n);
            double t = (MPI_Wtime() - t0) / iters;
            MPI_Allreduce(&t, &rep[r], 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
        }
        qsort(rep, 5, sizeof rep[0], cmp_double);
        if (rank == 0) {
            printf("%d,%ld,%d,%.9g,%.9g,%s\n", size, n * (long)elem, iters, rep[2], rep[0],
                   op_names[mode]);
            fflush(stdout);
        }
        free(buf);
        free(out);
    }
    MPI_Finalize();
    return 0;
}
