/* fma_peak: one core's measured peak of fused multiply-adds for an instruction-set path
 * (avx512: 512-bit, avx2: 256-bit, scalar: fmaf as the scalar kernels call it), from 12
 * independent chains, in GFLOP/s (2 FLOP per lane per FMA); "avx512bf16": VDPBF16PS, 4
 * FLOP per 32-bit lane (0 where the CPU lacks it). Compiled with target attributes, so one
 * portable binary measures every path this CPU offers. */
#ifndef DPTRAIN_BENCH_FMA_PEAK_H
#define DPTRAIN_BENCH_FMA_PEAK_H

double fma_peak_gflops(const char *isa);

#endif
