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
 * lack none), so that a refusal can be tested on a CPU that has every path. Call it
 * before dp_isa_select. */
void dp_isa_hide(const char *name);
/* The paths, widest first; NULL-terminated. */
extern const char *const dp_isa_names[];

#endif
