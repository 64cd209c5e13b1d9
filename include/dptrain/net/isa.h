/* isa: which instruction set the kernels run on.
 *
 * One binary carries every kernel three times: for AVX-512 (F+VL+BW+DQ), for AVX2+FMA and
 * for plain x86-64 (scalar, fmaf). Before main runs, the widest path this CPU offers is
 * chosen from CPUID, unless the environment variable DPTRAIN_ISA names another one
 * (avx512, avx2, scalar, auto). All paths compute the same bits: every output element is
 * the same chain of fused multiply-adds in the same order; only the speed differs. The
 * choice is process-wide; change it only between training steps, with no kernel running
 * (a program selects once at start-up; the tests switch between steps). */
#ifndef DPTRAIN_ISA_H
#define DPTRAIN_ISA_H

#include "dptrain/util/error.h"

/* Select a path by name: "avx512", "avx2", "scalar", or "auto" (the widest this CPU
 * offers). NULL or "" means DPTRAIN_ISA if set, else auto. Fails, leaving the current
 * choice, with a message naming the paths this CPU offers when the name is unknown or
 * the CPU lacks the instructions. */
int dp_isa_select(const char *name, dp_err *err);
/* The path in use: "avx512", "avx2" or "scalar". */
const char *dp_isa_name(void);
/* The path in use with its instructions and how it was chosen, for the banner:
 * "avx512 (AVX-512F+VL+BW+DQ, chosen from CPUID)". */
const char *dp_isa_describe(void);
/* 1 when this CPU (and OS) can run the named path, 0 when not or unknown. */
int dp_isa_available(const char *name);
/* For the tests: from now on act as if this CPU lacked the named path (not scalar; NULL:
 * lack none; undoes "bf16" too) or, with "bf16", AVX512-BF16, so that a refusal can be
 * tested on a CPU that has every path. Call it before dp_isa_select and
 * dp_precision_select. */
void dp_isa_hide(const char *name);
/* The paths, widest first; NULL-terminated. */
extern const char *const dp_isa_names[];

/* The products' precision: "fp32" (NULL means it too) or "bf16": the fc layers and the
 * convolutions with 16 or more columns (C*KH*KW) multiply bf16 operands (rounded to
 * nearest even) and sum in fp32; convolutions with fewer columns (conv1 of MNIST: 9, run
 * straight from the image) stay fp32, as do the weights, gradients and the update. bf16
 * needs the avx512 path on a CPU with AVX512-BF16, or the scalar path (its exact
 * emulation with fmaf: the same bits, slowly, for the tests); otherwise it fails saying
 * why. Process-wide like the path, and tied to it: select it after the path, before
 * sizing any scratch (conv's and fc's scratch depend on it), and again after changing the
 * path. Deterministic for any thread and rank count; the bits differ from fp32's. */
int dp_precision_select(const char *name, dp_err *err);
/* "fp32" or "bf16" */
const char *dp_precision_name(void);
/* For the banner: what runs in which precision, on which instructions. */
const char *dp_precision_describe(void);

/* The convolutions' algorithm: "direct" (NULL means it too: im2col and the products, or
 * straight from the image for few columns) or "winograd": Winograd's F(4x4, 3x3) for the
 * 3x3 convolutions with stride 1, no padding and 2 or more input channels, in fp32 (under
 * --precision bf16 they stay direct); the others stay direct. Its products do 4x fewer
 * multiply-adds; its bits are the same on every path and for any thread and rank count,
 * and differ from direct's by rounding (a few units in the sixth digit). Process-wide:
 * select it before sizing any scratch (conv's depends on it). */
int dp_conv_algorithm_select(const char *name, dp_err *err);
/* "direct" or "winograd" */
const char *dp_conv_algorithm_name(void);
/* For the banner: which convolutions run which algorithm. */
const char *dp_conv_algorithm_describe(void);

#endif
