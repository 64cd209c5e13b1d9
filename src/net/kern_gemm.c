/* kern_gemm: C = start + A*B in the axpy form, register-blocked, for one instruction set:
 * the body of gemm_body.h on floats, each step of a chain one fused multiply-add. A tile is
 * TR rows of C by TV vectors of columns, held in registers for the whole chain; the last
 * vector of a row is masked. (kern_bf16.c runs the same body on pairs of bf16.) */
#include <string.h>

#include "simd.h"

/* Tile shapes, sized for the register file: TR*TV accumulators + TV vectors of B + one
 * broadcast of A (32 zmm registers with AVX-512, 16 ymm with AVX2). */
#ifndef TR /* (tunable from the command line for experiments) */
#if VW == 16
#define TR 6
#define TV 4
#elif VW == 8
#define TR 6
#define TV 2
#else
#define TR 4
#define TV 4
#endif
#endif

#define G_ELT float
#define G_VB vf
#define G_LOAD(p) vf_load(p)
#define G_LOAD_M(p, m) vf_load_m(p, m)
#define G_SET1(x) vf_set1(x)
#define G_MADD(a, b, c) vf_fma(a, b, c)
#define G_NAME KFN(kern_gemm_axpy)
#include "gemm_body.h"
