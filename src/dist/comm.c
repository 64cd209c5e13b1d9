#include "dptrain/dist/comm.h"

#include <limits.h>
#include <stdint.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "dptrain/util/test_hooks.h"

static const char *thread_level_name(int level)
{
    return level == MPI_THREAD_SINGLE       ? "MPI_THREAD_SINGLE"
           : level == MPI_THREAD_FUNNELED   ? "MPI_THREAD_FUNNELED"
           : level == MPI_THREAD_SERIALIZED ? "MPI_THREAD_SERIALIZED"
           : level == MPI_THREAD_MULTIPLE   ? "MPI_THREAD_MULTIPLE"
                                            : "an unknown level";
}

int comm_init(int *argc, char ***argv, dp_comm *c, dp_err *err)
{
    memset(c, 0, sizeof *c);
    int provided;
    /* Only the main thread calls MPI; OpenMP threads and the watchdog never do, but they
     * run beside it: that is MPI_THREAD_FUNNELED, and nothing less will do. */
    if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
        return dp_fail(err, "MPI initialisation failed");
    if (provided < MPI_THREAD_FUNNELED) {
        MPI_Finalize();
        return dp_fail(err, "MPI provides the thread level %s, dptrain needs "
                            "MPI_THREAD_FUNNELED (OpenMP threads and the watchdog thread run "
                            "beside the main thread's MPI calls); use an MPI built with thread "
                            "support", thread_level_name(provided));
    }
    /* An MPI failure (a peer died, say) must end the job, never hang it. */
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_ARE_FATAL);
    MPI_Comm_rank(MPI_COMM_WORLD, &c->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &c->size);
    MPI_Comm local;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, c->rank, MPI_INFO_NULL, &local);
    MPI_Comm_rank(local, &c->local_rank);
    MPI_Comm_size(local, &c->local_size);
    int leader = c->local_rank == 0, nodes = 0;
    MPI_Allreduce(&leader, &nodes, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    c->nodes = nodes;
    MPI_Comm_free(&local);
    if (gethostname(c->host, sizeof c->host) != 0)
        snprintf(c->host, sizeof c->host, "unknown");
    c->host[sizeof c->host - 1] = 0;
    return 0;
}

void comm_finalize(void) { MPI_Finalize(); }

_Noreturn void comm_abort(int status)
{
    fflush(stdout);
    fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, status);
    exit(status); /* not reached */
}

double comm_time(void) { return MPI_Wtime(); }

int comm_agree(const dp_comm *c, int rc, dp_err *err)
{
    /* lowest failing rank, and how many failed */
    int mine[2] = {rc == 0 ? INT_MAX : c->rank, rc == 0 ? 0 : -1}, all[2];
    MPI_Allreduce(&mine[0], &all[0], 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    MPI_Allreduce(&mine[1], &all[1], 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    int first = all[0], failed = -all[1];
    if (first == INT_MAX)
        return 0;
    dp_err msg;
    if (c->rank == first)
        memcpy(&msg, err, sizeof msg);
    MPI_Bcast(msg.msg, sizeof msg.msg, MPI_CHAR, first, MPI_COMM_WORLD);
    msg.msg[sizeof msg.msg - 1] = 0;
    if (err) {
        memcpy(err, &msg, sizeof msg);
        /* Name the rank only when the others did not all fail the same way. */
        if (failed < c->size)
            dp_prefix(err, "rank %d", first);
    }
    return -1;
}

void comm_allreduce_sum_double(double *buf, int n)
{
    MPI_Allreduce(MPI_IN_PLACE, buf, n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
}

int64_t comm_allreduce_min_i64(int64_t v)
{
    int64_t out;
    MPI_Allreduce(&v, &out, 1, MPI_INT64_T, MPI_MIN, MPI_COMM_WORLD);
    return out;
}

int64_t comm_allreduce_max_i64(int64_t v)
{
    int64_t out;
    MPI_Allreduce(&v, &out, 1, MPI_INT64_T, MPI_MAX, MPI_COMM_WORLD);
    return out;
}

double comm_allreduce_max_double(double v)
{
    double out;
    MPI_Allreduce(&v, &out, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    return out;
}

void comm_allreduce_max_doubles(double *buf, int n)
{
    MPI_Allreduce(MPI_IN_PLACE, buf, n, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
}

void comm_broadcast(void *buf, size_t bytes, int root)
{
    char *p = buf;
    while (bytes > 0) {
        int chunk = bytes > (size_t)INT_MAX ? INT_MAX : (int)bytes;
        MPI_Bcast(p, chunk, MPI_BYTE, root, MPI_COMM_WORLD);
        p += chunk;
        bytes -= (size_t)chunk;
    }
}

void comm_gather_hosts(const dp_comm *c, char (*hosts)[64])
{
    MPI_Gather(c->host, 64, MPI_CHAR, hosts ? hosts[0] : NULL, 64, MPI_CHAR, 0, MPI_COMM_WORLD);
}

struct dp_reducer {
    int64_t *buf;
    size_t *begin, *end;
    MPI_Request *req;
    int nbuckets;
    dp_bucket_done on_done; /* NULL: requests tested and waited for all together */
    void *on_done_ctx;
    int *done;              /* [nbuckets]: MPI_Testsome/Waitsome's indices */
};

dp_reducer *reducer_create(int64_t *buf, const size_t *begin, const size_t *end, int nbuckets,
                           dp_err *err)
{
    dp_reducer *r = dp_calloc(1, sizeof *r, "reducer", err);
    if (!r)
        return NULL;
    r->begin = dp_calloc((size_t)nbuckets, sizeof(size_t), "reducer", err);
    r->end = dp_calloc((size_t)nbuckets, sizeof(size_t), "reducer", err);
    r->req = dp_calloc((size_t)nbuckets, sizeof(MPI_Request), "reducer", err);
    r->done = dp_calloc((size_t)nbuckets, sizeof(int), "reducer", err);
    if (!r->begin || !r->end || !r->req || !r->done) {
        reducer_free(r);
        return NULL;
    }
    for (int b = 0; b < nbuckets; b++) {
        if (end[b] - begin[b] > (size_t)INT_MAX) {
            dp_fail(err, "gradient bucket %d has %zu values, more than one MPI call takes", b,
                    end[b] - begin[b]);
            reducer_free(r);
            return NULL;
        }
        r->begin[b] = begin[b];
        r->end[b] = end[b];
        r->req[b] = MPI_REQUEST_NULL;
    }
    r->buf = buf;
    r->nbuckets = nbuckets;
    return r;
}

void reducer_start(dp_reducer *r, int b)
{
    MPI_Iallreduce(MPI_IN_PLACE, r->buf + r->begin[b], (int)(r->end[b] - r->begin[b]),
                   MPI_INT64_T, MPI_SUM, MPI_COMM_WORLD, &r->req[b]);
}

/* Open MPI 4.1 on 2 ranks, 37.8 MB of int64 (nopool's gradient): 22-26 ms in one call,
 * 11-19 ms in pieces of 8 MB (the pieces stay in the caches between its passes). */
#define RUN_PIECE ((size_t)1 << 20)

double reducer_run(dp_reducer *r, int b0, int b1)
{
    if (b0 >= b1)
        return 0.0;
    const double t0 = MPI_Wtime();
    const size_t begin = r->begin[b0], end = r->end[b1 - 1];
    for (size_t at = begin; at < end;) { /* in pieces of at most RUN_PIECE values */
        const size_t n = end - at > RUN_PIECE ? RUN_PIECE : end - at;
        MPI_Allreduce(MPI_IN_PLACE, r->buf + at, (int)n, MPI_INT64_T, MPI_SUM, MPI_COMM_WORLD);
        at += n;
    }
    for (int b = b0; r->on_done && b < b1; b++)
        r->on_done(r->on_done_ctx, b);
    return MPI_Wtime() - t0;
}

void reducer_on_done(dp_reducer *r, dp_bucket_done fn, void *ctx)
{
    r->on_done = fn;
    r->on_done_ctx = ctx;
}

/* Report the buckets MPI_Testsome/Waitsome found complete (their requests are now null). */
static void report_done(dp_reducer *r, int count)
{
    for (int i = 0; i < count && count != MPI_UNDEFINED; i++)
        r->on_done(r->on_done_ctx, r->done[i]);
}

void reducer_progress(dp_reducer *r)
{
    int count;
    if (!r->on_done) {
        MPI_Testall(r->nbuckets, r->req, &count, MPI_STATUSES_IGNORE);
        return;
    }
    MPI_Testsome(r->nbuckets, r->req, &count, r->done, MPI_STATUSES_IGNORE);
    report_done(r, count);
}

double reducer_wait(dp_reducer *r)
{
    double t0 = MPI_Wtime();
    if (!r->on_done) {
        MPI_Waitall(r->nbuckets, r->req, MPI_STATUSES_IGNORE);
        return MPI_Wtime() - t0;
    }
    for (int count = 0; count != MPI_UNDEFINED;) {
        MPI_Waitsome(r->nbuckets, r->req, &count, r->done, MPI_STATUSES_IGNORE);
        report_done(r, count);
    }
    return MPI_Wtime() - t0;
}

void reducer_free(dp_reducer *r)
{
    if (!r)
        return;
    free(r->begin);
    free(r->end);
    free(r->req);
    free(r->done);
    free(r);
}

uint64_t comm_allreduce_sum_u64(uint64_t v)
{
    uint64_t out;
    MPI_Allreduce(&v, &out, 1, MPI_UINT64_T, MPI_SUM, MPI_COMM_WORLD);
    return out;
}

void comm_gather_i64(const int64_t *mine, int n, int64_t *all)
{
    MPI_Gather(mine, n, MPI_INT64_T, all, n, MPI_INT64_T, 0, MPI_COMM_WORLD);
}

void comm_gatherv_bytes(const void *mine, int64_t bytes, void *all, const int64_t *counts)
{
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    int *n = NULL, *at = NULL;
    if (rank == 0) {
        n = malloc((size_t)size * sizeof(int));
        at = malloc((size_t)size * sizeof(int));
        if (!n || !at)
            comm_abort(1); /* cannot join the gather: end the job rather than hang it */
        int64_t sum = 0;
        for (int r = 0; r < size; r++) {
            n[r] = (int)counts[r];
            at[r] = (int)sum;
            sum += counts[r];
        }
    }
    MPI_Gatherv(mine, (int)bytes, MPI_BYTE, all, n, at, MPI_BYTE, 0, MPI_COMM_WORLD);
    free(n);
    free(at);
}

enum { TAG_CLOCK = 4711 };

void comm_clock_offsets(const dp_comm *c, int rounds, double *offset, double *error)
{
    for (int r = 1; r < c->size; r++) {
        if (c->rank == 0) {
            double best = 1e30, off = 0.0, there;
            for (int k = 0; k < rounds; k++) {
                double t0 = MPI_Wtime();
                MPI_Send(&t0, 1, MPI_DOUBLE, r, TAG_CLOCK, MPI_COMM_WORLD);
                MPI_Recv(&there, 1, MPI_DOUBLE, r, TAG_CLOCK, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
                double t1 = MPI_Wtime();
                if (t1 - t0 < best) {
                    best = t1 - t0;
                    off = there - 0.5 * (t0 + t1);
                }
            }
            offset[r] = off;
            error[r] = 0.5 * best;
        } else if (c->rank == r) {
            for (int k = 0; k < rounds; k++) {
                double t;
                MPI_Recv(&t, 1, MPI_DOUBLE, 0, TAG_CLOCK, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
                t = MPI_Wtime();
                MPI_Send(&t, 1, MPI_DOUBLE, 0, TAG_CLOCK, MPI_COMM_WORLD);
            }
        }
    }
    if (c->rank == 0) {
        offset[0] = 0.0;
        error[0] = 0.0;
    }
}

_Static_assert(sizeof(MPI_Request) <= sizeof(((dp_vote *)0)->request),
               "dp_vote.request must hold an MPI_Request");

void comm_vote_start(dp_vote *v, int flag)
{
    v->send = flag;
    v->recv = 0;
    MPI_Iallreduce(&v->send, &v->recv, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD,
                   (MPI_Request *)(void *)v->request);
    v->active = 1;
}

int comm_vote_finish(dp_vote *v)
{
    if (!v->active)
        return 0;
    MPI_Wait((MPI_Request *)(void *)v->request, MPI_STATUS_IGNORE);
    v->active = 0;
    return v->recv;
}

/* ---- memory shared by the ranks of one node --------------------------------------- */

struct dp_shared {
    MPI_Comm comm;
    MPI_Win win;
    void **part; /* [size] */
};

/* Where Open MPI's osc/sm puts a shared window's backing file. */
static const char *shared_dir(void)
{
    const char *d = getenv("OMPI_MCA_osc_sm_backing_directory");
    return d && *d ? d : "/dev/shm";
}

/* 1 when the backing directory has room for `need` bytes with a quarter to spare (a
 * page touched past a full tmpfs is a SIGBUS, not an error), else 0 and why. */
static int shared_room(int rank, size_t need, char *why, size_t why_len)
{
    struct statvfs v;
    const char *dir = shared_dir();
    struct stat st;
    if (statvfs(dir, &v) != 0 || stat(dir, &st) != 0) {
        snprintf(why, why_len, "%s, where MPI keeps shared memory, cannot be read", dir);
        return 0;
    }
    if (!S_ISDIR(st.st_mode) || access(dir, W_OK | X_OK) != 0) {
        snprintf(why, why_len, "%s, where MPI keeps shared memory, is not a directory this "
                 "rank may write in", dir);
        return 0;
    }
    const double avail = test_hook_shm_free(rank, (double)v.f_bavail * (double)v.f_frsize);
    if (avail < 1.25 * (double)need) {
        snprintf(why, why_len, "%s has %.0f MiB free, the ranks' shared sums need %.0f MiB and a "
                 "quarter to spare", dir, avail / 1048576.0, (double)need / 1048576.0);
        return 0;
    }
    return 1;
}

int shared_create(dp_shared **out, const dp_comm *c, size_t bytes, char *why, size_t why_len,
                  dp_err *err)
{
    *out = NULL;
    if (c->size < 2 || c->nodes > 1) {
        if (c->size < 2)
            snprintf(why, why_len, "one rank");
        else
            snprintf(why, why_len, "the ranks span %d nodes", c->nodes);
        return 0;
    }
    const size_t page = 4096;
    bytes = (bytes + page - 1) / page * page;
    int ok = bytes < SIZE_MAX / 2 / (size_t)c->size &&
             shared_room(c->rank, bytes * (size_t)c->size, why, why_len);
    int all = 0;
    MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    if (!all) {
        if (ok)
            snprintf(why, why_len, "another rank's %s lacks room for the shared sums",
                     shared_dir());
        return 0;
    }
    dp_shared *sh = dp_calloc(1, sizeof *sh, "shared memory", err);
    void **part = dp_calloc((size_t)c->size, sizeof *part, "shared memory", err);
    int rc = sh && part ? 0 : -1;
    if (comm_agree(c, rc, err)) {
        free(sh);
        free(part);
        return -1;
    }
    sh->part = part;
    MPI_Comm_dup(MPI_COMM_WORLD, &sh->comm);
    MPI_Info info;
    MPI_Info_create(&info);
    MPI_Info_set(info, "alloc_shared_noncontig", "true"); /* each part on its own pages */
    void *mine = NULL;
    /* a part may start past a header (Open MPI 4.1: 264 bytes): one line more, to align
     * it; the segment is mapped on a page boundary in every rank, so all align alike */
    MPI_Win_allocate_shared((MPI_Aint)(bytes + 64), 1, info, sh->comm, &mine, &sh->win);
    MPI_Info_free(&info);
    for (int q = 0; q < c->size; q++) {
        MPI_Aint size;
        int unit;
        char *raw;
        MPI_Win_shared_query(sh->win, q, &size, &unit, &raw);
        sh->part[q] = raw + (64 - (uintptr_t)raw % 64) % 64;
        if ((size_t)size < bytes + 64)
            rc = dp_fail(err, "the shared window's part of rank %d is %zu bytes, not %zu "
                              "(--reduction mpi avoids it)", q, (size_t)size, bytes + 64);
    }
    MPI_Win_lock_all(MPI_MODE_NOCHECK, sh->win);
    memset(sh->part[c->rank], 0, bytes); /* its pages, first touched by their owner */
    shared_sync(sh);
    if (comm_agree(c, rc, err)) {
        shared_free(sh);
        return -1;
    }
    *out = sh;
    return 0;
}

void *shared_part(const dp_shared *sh, int rank) { return sh->part[rank]; }

void shared_sync(dp_shared *sh)
{
    MPI_Win_sync(sh->win);
    MPI_Barrier(sh->comm);
    MPI_Win_sync(sh->win);
}

void shared_free(dp_shared *sh)
{
    if (!sh)
        return;
    MPI_Win_unlock_all(sh->win);
    MPI_Win_free(&sh->win);
    MPI_Comm_free(&sh->comm);
    free(sh->part);
    free(sh);
}
