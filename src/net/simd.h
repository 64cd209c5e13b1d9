/* simd: the few vector operations the kernels are written in, for the instruction set this
 * translation unit is compiled for. The kernel sources (kern_*.c) are compiled three times
 * (CMakeLists.txt): with AVX-512 F+VL+BW+DQ, with AVX2+FMA, and for plain x86-64; each
 * build names its functions with its own suffix (KFN) and fills one table of kernels.
 *
 * A vector `vf` holds VW floats (16, 8 or 1). The only arithmetic that can differ between
 * instruction sets is the multiply-add, and vf_fma is a fused multiply-add on every path
 * (the scalar path calls fmaf), so a kernel that gives each output element the same chain
 * of vf_fma calls in the same order gives the same bits on every path. Tails are masked:
 * vm_first(n) selects the first n lanes (0 <= n <= VW). */
#ifndef DPTRAIN_NET_SIMD_H
#define DPTRAIN_NET_SIMD_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "kernel_table.h"

#define KCAT2(a, b) a##_##b
#define KCAT(a, b) KCAT2(a, b)
/* kern_gemm_avx512, kern_gemm_avx2, kern_gemm_scalar, ... */
#define KFN(name) KCAT(name, DP_ISA_SUFFIX)

#define ALWAYS_INLINE static inline __attribute__((always_inline))
/* GCC's "no dependence between iterations"; clang, which would warn of an unknown pragma
 * (the fuzzers' build), compiles the loop as it did while it ignored it */
#if defined(__clang__)
#define IVDEP
#else
#define IVDEP _Pragma("GCC ivdep")
#endif

#if defined(DP_ISA_AVX512)
#if !defined(__AVX512F__) || !defined(__AVX512VL__) || !defined(__AVX512BW__) || \
    !defined(__AVX512DQ__) || !defined(__FMA__)
#error "the avx512 kernels need -mavx512f -mavx512vl -mavx512bw -mavx512dq -mfma"
#endif
#include <immintrin.h>
#define VW 16
typedef __m512 vf;
typedef __mmask16 vmask;
ALWAYS_INLINE vmask vm_first(int n) { return (vmask)((1u << n) - 1u); }
/* lanes lo <= l < hi */
ALWAYS_INLINE vmask vm_range(int lo, int hi) { return (vmask)(((1u << hi) - 1u) & ~((1u << lo) - 1u)); }
ALWAYS_INLINE vf vf_zero(void) { return _mm512_setzero_ps(); }
ALWAYS_INLINE vf vf_set1(float x) { return _mm512_set1_ps(x); }
ALWAYS_INLINE vf vf_load(const float *p) { return _mm512_loadu_ps(p); }
ALWAYS_INLINE vf vf_load_m(const float *p, vmask m) { return _mm512_maskz_loadu_ps(m, p); }
ALWAYS_INLINE void vf_store(float *p, vf v) { _mm512_storeu_ps(p, v); }
ALWAYS_INLINE void vf_store_m(float *p, vmask m, vf v) { _mm512_mask_storeu_ps(p, m, v); }
ALWAYS_INLINE vf vf_fma(vf a, vf b, vf c) { return _mm512_fmadd_ps(a, b, c); }
ALWAYS_INLINE vf vf_add(vf a, vf b) { return _mm512_add_ps(a, b); }
ALWAYS_INLINE vf vf_mul(vf a, vf b) { return _mm512_mul_ps(a, b); }
/* a + b in the lanes of m, a elsewhere */
ALWAYS_INLINE vf vf_add_m(vf a, vmask m, vf b) { return _mm512_mask_add_ps(a, m, a, b); }
/* b in the lanes of m, a elsewhere */
ALWAYS_INLINE vf vf_blend_m(vf a, vmask m, vf b) { return _mm512_mask_blend_ps(m, a, b); }
/* Masked loads and stores are as cheap as full ones here: no need to avoid them. */
#define VM_CHEAP 1

#elif defined(DP_ISA_AVX2)
#if !defined(__AVX2__) || !defined(__FMA__)
#error "the avx2 kernels need -mavx2 -mfma"
#endif
#include <immintrin.h>
#define VW 8
typedef __m256 vf;
typedef __m256i vmask;
ALWAYS_INLINE vmask vm_first(int n)
{
    static const int32_t bits[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
    return _mm256_loadu_si256((const __m256i *)(bits + 8 - n));
}
ALWAYS_INLINE vmask vm_range(int lo, int hi)
{
    const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_andnot_si256(_mm256_cmpgt_epi32(_mm256_set1_epi32(lo), iota),
                               _mm256_cmpgt_epi32(_mm256_set1_epi32(hi), iota));
}
ALWAYS_INLINE vf vf_zero(void) { return _mm256_setzero_ps(); }
ALWAYS_INLINE vf vf_set1(float x) { return _mm256_set1_ps(x); }
ALWAYS_INLINE vf vf_load(const float *p) { return _mm256_loadu_ps(p); }
ALWAYS_INLINE vf vf_load_m(const float *p, vmask m) { return _mm256_maskload_ps(p, m); }
ALWAYS_INLINE void vf_store(float *p, vf v) { _mm256_storeu_ps(p, v); }
ALWAYS_INLINE void vf_store_m(float *p, vmask m, vf v) { _mm256_maskstore_ps(p, m, v); }
ALWAYS_INLINE vf vf_fma(vf a, vf b, vf c) { return _mm256_fmadd_ps(a, b, c); }
ALWAYS_INLINE vf vf_add(vf a, vf b) { return _mm256_add_ps(a, b); }
ALWAYS_INLINE vf vf_mul(vf a, vf b) { return _mm256_mul_ps(a, b); }
/* a + b in the lanes of m, a elsewhere (b is zero outside m when loaded with it) */
ALWAYS_INLINE vf vf_add_m(vf a, vmask m, vf b)
{
    return _mm256_blendv_ps(a, _mm256_add_ps(a, b), _mm256_castsi256_ps(m));
}
ALWAYS_INLINE vf vf_blend_m(vf a, vmask m, vf b)
{
    return _mm256_blendv_ps(a, b, _mm256_castsi256_ps(m));
}
/* vmaskmovps is slow on some CPUs (AMD's stores especially): use it only for tails. */
#define VM_CHEAP 0

#elif defined(DP_ISA_SCALAR)
#if defined(__AVX__)
#error "the scalar kernels are meant for plain x86-64: build them without -mavx"
#endif
#define VW 1
typedef float vf;
typedef int vmask;
ALWAYS_INLINE vmask vm_first(int n) { return n > 0; }
ALWAYS_INLINE vmask vm_range(int lo, int hi) { return lo <= 0 && hi > 0; }
ALWAYS_INLINE vf vf_zero(void) { return 0.0f; }
ALWAYS_INLINE vf vf_set1(float x) { return x; }
ALWAYS_INLINE vf vf_load(const float *p) { return *p; }
ALWAYS_INLINE vf vf_load_m(const float *p, vmask m) { return m ? *p : 0.0f; }
ALWAYS_INLINE void vf_store(float *p, vf v) { *p = v; }
ALWAYS_INLINE void vf_store_m(float *p, vmask m, vf v)
{
    if (m)
        *p = v;
}
ALWAYS_INLINE vf vf_fma(vf a, vf b, vf c) { return fmaf(a, b, c); }
ALWAYS_INLINE vf vf_add(vf a, vf b) { return a + b; }
ALWAYS_INLINE vf vf_mul(vf a, vf b) { return a * b; }
ALWAYS_INLINE vf vf_add_m(vf a, vmask m, vf b) { return m ? a + b : a; }
#define VM_CHEAP 1

#else
#error "define DP_ISA_AVX512, DP_ISA_AVX2 or DP_ISA_SCALAR (CMakeLists.txt does)"
#endif

/* One fused multiply-add on one float: the same rounding as one lane of vf_fma. On the
 * vector paths fmaf compiles to one instruction (-mfma). */
#define MADD(a, b, c) fmaf((a), (b), (c))

#endif
