/* fma_peak: one core's measured peak of fused multiply-adds for an instruction-set path
 * (avx512: 512-bit, avx2: 256-bit, scalar: fmaf as the scalar kernels call it), from 12
 * independent chains, in GFLOP/s (2 FLOP per lane per FMA). Compiled with target
 * attributes, so one portable binary measures every path this CPU offers. */
#ifndef DPTRAIN_BENCH_FMA_PEAK_H
#define DPTRAIN_BENCH_FMA_PEAK_H

double fma_peak_gflops(const char *isa);

#endif
