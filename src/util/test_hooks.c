/* test_hooks: compiled twice (CMakeLists.txt): empty for the installed programs, and with
 * DPTRAIN_TEST_HOOKS for dptrain-testhooks (test_hooks.h says what each hook does). */
#include "dptrain/util/test_hooks.h"

#include <stddef.h>

#ifndef DPTRAIN_TEST_HOOKS

int test_hooks_enabled(void) { return 0; }
void test_hook_checkpoint_write(void) {}
void test_hook_phase(int rank, long step, const char *phase)
{
    (void)rank, (void)step, (void)phase;
}
void test_hook_samples(int rank, long step, const int64_t *idx, int n)
{
    (void)rank, (void)step, (void)idx, (void)n;
}
double test_hook_progress_lines_s(double dflt) { return dflt; }
int test_hook_ties(int dflt) { return dflt; }
const char *test_hook_isa_lacking(int rank)
{
    (void)rank;
    return NULL;
}
double test_hook_shm_free(int rank, double dflt)
{
    (void)rank;
    return dflt;
}
double test_hook_time_scale(int rank)
{
    (void)rank;
    return 1.0;
}
int test_hook_thread_split(double *shares, int max, int *rotate)
{
    (void)shares, (void)max, (void)rotate;
    return 0;
}
double test_hook_thread_slow(int *thread)
{
    (void)thread;
    return 1.0;
}

#else

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int test_hooks_enabled(void) { return 1; }

static void say(const char *msg)
{
    if (write(STDERR_FILENO, msg, strlen(msg)) < 0) {
        /* nothing to do */
    }
}

void test_hook_checkpoint_write(void)
{
    static int writes = 0;
    ++writes;
    const char *crash = getenv("DPTRAIN_TEST_CRASH_IN_CHECKPOINT");
    const char *stop = getenv("DPTRAIN_TEST_STOP_IN_CHECKPOINT");
    if (crash && atoi(crash) == writes) {
        say("dptrain: DPTRAIN_TEST_CRASH_IN_CHECKPOINT: dying mid-write\n");
        _exit(137);
    }
    if (stop && atoi(stop) == writes) {
        say("dptrain: DPTRAIN_TEST_STOP_IN_CHECKPOINT: stopped mid-write (SIGSTOP)\n");
        raise(SIGSTOP);
    }
}

void test_hook_phase(int rank, long step, const char *phase)
{
    const char *stall = getenv("DPTRAIN_TEST_STALL");
    long r, s;
    char seconds[32], name[32] = "compute";
    if (!stall || sscanf(stall, "%ld:%ld:%31[^:]:%31s", &r, &s, seconds, name) < 3 ||
        r != rank || s != step || strcmp(name, phase) != 0)
        return;
    if (strcmp(seconds, "stop") == 0) {
        say("dptrain: DPTRAIN_TEST_STALL: this rank stops itself (SIGSTOP)\n");
        raise(SIGSTOP);
        return;
    }
    struct timespec t = {(time_t)atol(seconds), 0};
    nanosleep(&t, NULL);
}

double test_hook_progress_lines_s(double dflt)
{
    const char *env = getenv("DPTRAIN_TEST_PROGRESS_LINES_S");
    return env && *env ? atof(env) : dflt;
}

int test_hook_ties(int dflt)
{
    const char *env = getenv("DPTRAIN_TEST_OLD_TIES");
    return env && !strcmp(env, "1") ? 0 : dflt;
}

const char *test_hook_isa_lacking(int rank)
{
    static char name[32];
    const char *env = getenv("DPTRAIN_TEST_ISA_LACKS");
    long r;
    if (!env || sscanf(env, "%ld:%31s", &r, name) != 2 || r != rank)
        return NULL;
    return name;
}

double test_hook_shm_free(int rank, double dflt)
{
    const char *env = getenv("DPTRAIN_TEST_SHM_FREE");
    long r;
    double mib;
    if (!env || sscanf(env, "%ld:%lf", &r, &mib) != 2 || r != rank)
        return dflt;
    return mib * 1048576.0;
}

void test_hook_samples(int rank, long step, const int64_t *idx, int n)
{
    const char *prefix = getenv("DPTRAIN_TEST_SAMPLE_LOG");
    if (!prefix)
        return;
    char path[4096];
    snprintf(path, sizeof path, "%s.%d", prefix, rank);
    FILE *f = fopen(path, "a");
    if (!f)
        return;
    for (int i = 0; i < n; i++)
        fprintf(f, "%ld %lld\n", step, (long long)idx[i]);
    fclose(f);
}

double test_hook_time_scale(int rank)
{
    static long calls = 0; /* one a step */
    const char *v = getenv("DPTRAIN_TEST_SLOW_RANK");
    int r;
    double factor;
    long steps = -1;
    if (!v || sscanf(v, "%d:%lf:%ld", &r, &factor, &steps) < 2 || r != rank || !(factor > 0.0))
        return 1.0;
    return steps < 0 || calls++ < steps ? factor : 1.0;
}

int test_hook_thread_split(double *shares, int max, int *rotate)
{
    const char *v = getenv("DPTRAIN_TEST_THREAD_SPLIT");
    int T = 0, used = 0;
    if (!v)
        return 0;
    while (T < max && sscanf(v, "%lf%n", &shares[T], &used) == 1) {
        T++;
        v += used;
        if (*v != ',')
            break;
        v++;
    }
    *rotate = strcmp(v, ":rotate") == 0;
    return T >= 2 ? T : 0;
}

double test_hook_thread_slow(int *thread)
{
    const char *v = getenv("DPTRAIN_TEST_SLOW_THREAD");
    double factor;
    if (!v || sscanf(v, "%d:%lf", thread, &factor) != 2 || !(factor > 0.0))
        return 1.0;
    return factor;
}

#endif
