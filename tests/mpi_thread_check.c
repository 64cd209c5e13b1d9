/* mpi_thread_check: an LD_PRELOAD library for the watchdog tests. It stands between
 * dptrain and MPI (the MPI profiling interface: each MPI_X here calls PMPI_X) and reports
 * every MPI call made by a thread other than the one that initialised MPI, which
 * MPI_THREAD_FUNNELED forbids (tests/test_watchdog.sh greps for its line). It can also
 * pretend that MPI provides less thread support than asked for:
 *   MPI_THREAD_CHECK_PROVIDE=single   MPI_Init_thread reports MPI_THREAD_SINGLE
 * and says that it is loaded, so that a test can tell it was in the process at all. */
#include <mpi.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static pthread_t main_thread;
static int initialised;

static void say(const char *msg)
{
    if (write(STDERR_FILENO, msg, strlen(msg)) < 0) {
        /* nothing to do */
    }
}

static void check(const char *fn)
{
    if (initialised && !pthread_equal(pthread_self(), main_thread)) {
        char msg[256];
        snprintf(msg, sizeof msg, "mpi_thread_check: %s called from a thread other than the "
                                  "one that initialised MPI (MPI_THREAD_FUNNELED forbids it)\n",
                 fn);
        say(msg);
    }
}

int MPI_Init_thread(int *argc, char ***argv, int required, int *provided)
{
    int rc = PMPI_Init_thread(argc, argv, required, provided);
    main_thread = pthread_self();
    initialised = 1;
    const char *level = getenv("MPI_THREAD_CHECK_PROVIDE");
    if (level && strcmp(level, "single") == 0)
        *provided = MPI_THREAD_SINGLE;
    say("mpi_thread_check: loaded; MPI initialised\n");
    return rc;
}

int MPI_Abort(MPI_Comm comm, int code)
{
    check("MPI_Abort");
    return PMPI_Abort(comm, code);
}

int MPI_Allreduce(const void *s, void *r, int n, MPI_Datatype t, MPI_Op op, MPI_Comm c)
{
    check("MPI_Allreduce");
    return PMPI_Allreduce(s, r, n, t, op, c);
}

int MPI_Iallreduce(const void *s, void *r, int n, MPI_Datatype t, MPI_Op op, MPI_Comm c,
                   MPI_Request *req)
{
    check("MPI_Iallreduce");
    return PMPI_Iallreduce(s, r, n, t, op, c, req);
}

int MPI_Bcast(void *buf, int n, MPI_Datatype t, int root, MPI_Comm c)
{
    check("MPI_Bcast");
    return PMPI_Bcast(buf, n, t, root, c);
}

int MPI_Gather(const void *s, int sn, MPI_Datatype st, void *r, int rn, MPI_Datatype rt,
               int root, MPI_Comm c)
{
    check("MPI_Gather");
    return PMPI_Gather(s, sn, st, r, rn, rt, root, c);
}

int MPI_Wait(MPI_Request *req, MPI_Status *status)
{
    check("MPI_Wait");
    return PMPI_Wait(req, status);
}

int MPI_Waitall(int n, MPI_Request reqs[], MPI_Status statuses[])
{
    check("MPI_Waitall");
    return PMPI_Waitall(n, reqs, statuses);
}

int MPI_Testall(int n, MPI_Request reqs[], int *flag, MPI_Status statuses[])
{
    check("MPI_Testall");
    return PMPI_Testall(n, reqs, flag, statuses);
}

double MPI_Wtime(void)
{
    check("MPI_Wtime");
    return PMPI_Wtime();
}

int MPI_Finalize(void)
{
    check("MPI_Finalize");
    return PMPI_Finalize();
}
