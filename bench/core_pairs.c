/* core_pairs: what it costs two cores to share data, the way two threads of one rank do.
 *
 *   build/bench/core_pairs [MIB...]      (default sizes: 0.25 1 4 MiB)
 *
 * Two threads, pinned to the first two CPUs of the process's affinity mask, measure:
 *   - the round trip of one cache line between them (ping-pong on one atomic flag);
 *   - reading a buffer the other core has just written, against reading one this core
 *     wrote itself (the trainer's threads read each other's activations in the weight
 *     gradients, which split the work by columns over all samples);
 *   - writing a buffer both cores have just read, against one only this core read (the
 *     update and the fused forward write lines the other core's backward read).
 * Each figure is the best of several repetitions, so a busy spell of a shared machine
 * lowers it less. The ratios say how much slower sharing is than keeping data on one core:
 * 2 ranks x 1 thread share nothing; 1 rank x 2 threads share these. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { PINGS = 100000, REPS = 7, LINE = 64 };

static int cpus[2];
static _Atomic int flag __attribute__((aligned(LINE)));
static pthread_barrier_t bar;

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

static void pin(int cpu)
{
    cpu_set_t s;
    CPU_ZERO(&s);
    CPU_SET(cpu, &s);
    pthread_setaffinity_np(pthread_self(), sizeof s, &s);
}

/* Reads every line once (one float of each, summed so that the loads stay). */
static float touch_read(const float *x, size_t n)
{
    float s = 0.0f;
    for (size_t i = 0; i < n; i += LINE / sizeof(float))
        s += x[i];
    return s;
}

static void touch_write(float *x, size_t n, float v)
{
    for (size_t i = 0; i < n; i += LINE / sizeof(float))
        x[i] = v;
}

typedef struct {
    float *buf;
    size_t n;
    double t[3][REPS]; /* read own, read the other's, write shared; thread 0's times */
    volatile float sink;
} job;

/* Thread 1's part of each measurement, in step with thread 0's through the barrier. */
static void *second(void *arg)
{
    job *j = arg;
    pin(cpus[1]);
    for (int i = 0; i < PINGS; i++) {
        while (atomic_load_explicit(&flag, memory_order_acquire) != 1)
            ;
        atomic_store_explicit(&flag, 0, memory_order_release);
    }
    for (int r = 0; r < REPS; r++) {
        pthread_barrier_wait(&bar); /* thread 0 reads its own */
        pthread_barrier_wait(&bar);
        touch_write(j->buf, j->n, (float)r); /* this core writes, thread 0 reads */
        pthread_barrier_wait(&bar);
        pthread_barrier_wait(&bar);
        j->sink += touch_read(j->buf, j->n); /* both read, thread 0 writes */
        pthread_barrier_wait(&bar);
        pthread_barrier_wait(&bar);
    }
    return NULL;
}

static double best(const double *t)
{
    double b = t[0];
    for (int r = 1; r < REPS; r++)
        b = t[r] < b ? t[r] : b;
    return b;
}

int main(int argc, char **argv)
{
    cpu_set_t mask;
    sched_getaffinity(0, sizeof mask, &mask);
    for (int c = 0, k = 0; c < CPU_SETSIZE && k < 2; c++)
        if (CPU_ISSET(c, &mask))
            cpus[k++] = c;
    if (CPU_COUNT(&mask) < 2) {
        fprintf(stderr, "core_pairs: needs 2 CPUs in its affinity mask (mpirun: --bind-to none)\n");
        return 1;
    }
    enum { MAX_SIZES = 16 };
    double mib[MAX_SIZES] = {0.25, 1, 4};
    const int nsizes = argc > 1 ? argc - 1 : 3;
    if (nsizes > MAX_SIZES) {
        fprintf(stderr, "core_pairs: at most %d sizes\n", MAX_SIZES);
        return 2;
    }
    for (int s = 0; argc > 1 && s < nsizes; s++) {
        char *end;
        mib[s] = strtod(argv[s + 1], &end);
        if (end == argv[s + 1] || *end || !(mib[s] >= 0.01 && mib[s] <= 4096)) {
            fprintf(stderr, "core_pairs: '%s': expected a size in MiB, 0.01 to 4096\n",
                    argv[s + 1]);
            return 2;
        }
    }
    printf("core_pairs: CPUs %d and %d\n", cpus[0], cpus[1]);
    for (int s = 0; s < nsizes; s++) {
        job j = {.n = (size_t)(mib[s] * 1048576 / sizeof(float))};
        if (!(j.buf = aligned_alloc(LINE, (j.n * sizeof(float) + LINE - 1) / LINE * LINE))) {
            fprintf(stderr, "core_pairs: out of memory for %g MiB\n", mib[s]);
            return 1;
        }
        memset(j.buf, 0, j.n * sizeof(float));
        pthread_barrier_init(&bar, NULL, 2);
        pin(cpus[0]);
        pthread_t t;
        pthread_create(&t, NULL, second, &j);
        const double t0 = now();
        for (int i = 0; i < PINGS; i++) {
            atomic_store_explicit(&flag, 1, memory_order_release);
            while (atomic_load_explicit(&flag, memory_order_acquire) != 0)
                ;
        }
        const double ping = (now() - t0) / PINGS;
        for (int r = 0; r < REPS; r++) {
            touch_write(j.buf, j.n, (float)r);
            pthread_barrier_wait(&bar);
            double a = now();
            j.sink += touch_read(j.buf, j.n);
            j.t[0][r] = now() - a;
            pthread_barrier_wait(&bar);
            pthread_barrier_wait(&bar); /* thread 1 has written it */
            a = now();
            j.sink += touch_read(j.buf, j.n);
            j.t[1][r] = now() - a;
            pthread_barrier_wait(&bar);
            pthread_barrier_wait(&bar); /* both have read it */
            a = now();
            touch_write(j.buf, j.n, (float)r);
            j.t[2][r] = now() - a;
            pthread_barrier_wait(&bar);
        }
        pthread_join(t, NULL);
        pthread_barrier_destroy(&bar);
        /* writing lines only this core holds: thread 0 alone, after its own read */
        double own_write[REPS];
        for (int r = 0; r < REPS; r++) {
            j.sink += touch_read(j.buf, j.n);
            const double a = now();
            touch_write(j.buf, j.n, (float)r);
            own_write[r] = now() - a;
        }
        const double lines = (double)j.n * sizeof(float) / LINE;
        const double ro = best(j.t[0]), rx = best(j.t[1]), wx = best(j.t[2]),
                     wo = best(own_write);
        if (s == 0)
            printf("cache line round trip between the two cores: %.0f ns\n", ping * 1e9);
        printf("%6.2f MiB: read own %5.1f ns/line, other's %5.1f (%.1fx); write own %5.1f, "
               "shared %5.1f (%.1fx)\n",
               mib[s], ro / lines * 1e9, rx / lines * 1e9, rx / ro, wo / lines * 1e9,
               wx / lines * 1e9, wx / wo);
        free(j.buf);
    }
    return 0;
}
