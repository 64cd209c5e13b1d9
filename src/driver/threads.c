#include "dptrain/driver/threads.h"

#include <sched.h>
#include <stdlib.h>
#include <unistd.h>

int threads_cores_allowed(void)
{
    cpu_set_t set;
    return sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : 1;
}

int threads_oversubscribed(const dp_comm *c, int threads)
{
    const long online = sysconf(_SC_NPROCESSORS_ONLN);
    return online > 0 && (long)threads * c->local_size > online;
}

int threads_default(const dp_comm *c)
{
    const char *env = getenv("OMP_NUM_THREADS");
    if (env && atoi(env) > 0)
        return atoi(env);
    const int allowed = threads_cores_allowed();
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    int share = online > 0 ? (int)(online / c->local_size) : 1;
    int t = allowed < share ? allowed : share;
    return t < 1 ? 1 : t;
}
