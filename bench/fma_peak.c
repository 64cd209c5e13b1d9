/* fma_peak: see fma_peak.h. Each loop keeps 12 accumulators in registers, enough to fill
 * two FMA pipes of four-cycle latency; the sum of the accumulators is returned so the
 * compiler cannot drop the work. */
#include "fma_peak.h"

#include <immintrin.h>
#include <math.h>
#include <string.h>
#include <time.h>

/* The thread's own CPU time: a peak is what the core does while it runs this thread, so a
 * shared machine's other work does not lower it. */
static double seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

#define CHAINS 12

__attribute__((target("avx512f"))) static float chains512(long n)
{
    __m512 acc[CHAINS], x = _mm512_set1_ps(0.999f), y = _mm512_set1_ps(1e-3f);
    for (int i = 0; i < CHAINS; i++)
        acc[i] = _mm512_set1_ps((float)i);
    for (long k = 0; k < n; k++)
        for (int i = 0; i < CHAINS; i++)
            acc[i] = _mm512_fmadd_ps(acc[i], x, y);
    float total = 0;
    for (int i = 0; i < CHAINS; i++)
        total += _mm512_reduce_add_ps(acc[i]);
    return total;
}

__attribute__((target("avx2,fma"))) static float chains256(long n)
{
    __m256 acc[CHAINS], x = _mm256_set1_ps(0.999f), y = _mm256_set1_ps(1e-3f);
    for (int i = 0; i < CHAINS; i++)
        acc[i] = _mm256_set1_ps((float)i);
    for (long k = 0; k < n; k++)
        for (int i = 0; i < CHAINS; i++)
            acc[i] = _mm256_fmadd_ps(acc[i], x, y);
    float s[8], total = 0;
    for (int i = 0; i < CHAINS; i++) {
        _mm256_storeu_ps(s, acc[i]);
        total += s[0];
    }
    return total;
}

/* VDPBF16PS: per 32-bit lane two bf16 products added in turn to an fp32 sum, 4 FLOP. */
__attribute__((target("avx512f,avx512bf16"))) static float chains_bf16(long n)
{
    __m512 acc[CHAINS];
    const __m512bh x = (__m512bh)_mm512_set1_epi32(0x3f7f3f7f), y = (__m512bh)_mm512_set1_epi32(0x3a833a83);
    for (int i = 0; i < CHAINS; i++)
        acc[i] = _mm512_set1_ps((float)i);
    for (long k = 0; k < n; k++)
        for (int i = 0; i < CHAINS; i++)
            acc[i] = _mm512_dpbf16_ps(acc[i], x, y);
    float total = 0;
    for (int i = 0; i < CHAINS; i++)
        total += _mm512_reduce_add_ps(acc[i]);
    return total;
}

/* The scalar kernels' fused multiply-add: a call to the C library's fmaf. */
static float chains_scalar(long n)
{
    volatile float vx = 0.999f, vy = 1e-3f;
    float acc[CHAINS], x = vx, y = vy;
    for (int i = 0; i < CHAINS; i++)
        acc[i] = (float)i;
    for (long k = 0; k < n; k++)
        for (int i = 0; i < CHAINS; i++)
            acc[i] = fmaf(acc[i], x, y);
    float total = 0;
    for (int i = 0; i < CHAINS; i++)
        total += acc[i];
    return total;
}

double fma_peak_gflops(const char *isa)
{
    const int bf16 = !strcmp(isa, "avx512bf16");
    if (bf16 && !__builtin_cpu_supports("avx512bf16"))
        return 0;
    /* FLOP per instruction over 2: a bf16 lane does two multiply-adds */
    int lanes = bf16 ? 32 : !strcmp(isa, "avx512") ? 16 : !strcmp(isa, "avx2") ? 8 : 1;
    float (*run)(long) = bf16 ? chains_bf16 : lanes == 16 ? chains512 : lanes == 8 ? chains256
                                                                                 : chains_scalar;
    long n = lanes > 1 ? 2000000 : 200000;
    double best = 0;
    volatile float sink = 0;
    for (int rep = 0; rep < 5; rep++) { /* the best of 5: a loaded core only slows it */
        double t0 = seconds();
        sink += run(n);
        double g = (double)n * CHAINS * lanes * 2 / (seconds() - t0) * 1e-9;
        if (g > best)
            best = g;
    }
    (void)sink;
    return best;
}
