/* kernels: the public kernels (kernels.h) and the choice of instruction set (isa.h).
 *
 * The kernels themselves live in kern_*.c, compiled once per path into three tables
 * (kernel_table.h); this file picks one table at start-up and forwards to it. Why one
 * process-wide pointer: the choice is a fact about the CPU, made once before any thread
 * starts, and every path gives the same bits, so nothing downstream depends on it. */
#include "dptrain/net/kernels.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dptrain/net/isa.h"
#include "kernel_table.h"

/* ---- choosing the path ------------------------------------------------------------- */

typedef struct {
    const char *name, *features;
    const dp_kernel_table *table;
} isa_path;

static const isa_path paths[] = {
    {"avx512", "AVX-512F+VL+BW+DQ", &dp_kernels_avx512},
    {"avx2", "AVX2+FMA", &dp_kernels_avx2},
    {"scalar", "x86-64, fmaf", &dp_kernels_scalar},
};
enum { NPATHS = sizeof paths / sizeof paths[0] };

const char *const dp_isa_names[] = {"avx512", "avx2", "scalar", NULL};

static const isa_path *active = &paths[NPATHS - 1];
static const char *active_how = "the fallback";
static char env_problem[256]; /* a DPTRAIN_ISA that could not be applied before main */
static const isa_path *hidden; /* dp_isa_hide: a path to treat as missing */
static int hidden_bf16;        /* dp_isa_hide("bf16") */

static int cpu_has(const isa_path *p)
{
    if (p->table == &dp_kernels_scalar)
        return 1;
    if (p == hidden)
        return 0;
    /* libgcc checks the OS saves the wider registers (XGETBV) before it reports these */
    int avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    if (p->table == &dp_kernels_avx2)
        return avx2;
    return avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
           __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq");
}

static const isa_path *widest(void)
{
    for (int i = 0; i < NPATHS; i++)
        if (cpu_has(&paths[i]))
            return &paths[i];
    return &paths[NPATHS - 1];
}

static const isa_path *find(const char *name)
{
    for (int i = 0; i < NPATHS; i++)
        if (!strcmp(name, paths[i].name))
            return &paths[i];
    return NULL;
}

void dp_isa_hide(const char *name)
{
    if (name && !strcmp(name, "bf16")) {
        hidden_bf16 = 1;
        return;
    }
    hidden = name ? find(name) : NULL;
    if (!name)
        hidden_bf16 = 0;
}

int dp_isa_available(const char *name)
{
    const isa_path *p = name ? find(name) : NULL;
    return p && cpu_has(p);
}

/* Sets *out, or fails naming what this CPU offers. */
static int resolve(const char *name, const char *source, const isa_path **out, dp_err *err)
{
    if (!strcmp(name, "auto")) {
        *out = widest();
        return 0;
    }
    char offered[64] = "";
    for (int i = 0; i < NPATHS; i++)
        if (cpu_has(&paths[i]))
            strcat(strcat(offered, *offered ? ", " : ""), paths[i].name);
    const isa_path *p = find(name);
    if (!p)
        return dp_fail(err, "%s: unknown instruction set '%s' (expected avx512, avx2, scalar "
                            "or auto; this CPU offers %s)", source, name, offered);
    if (!cpu_has(p))
        return dp_fail(err, "%s: this CPU lacks %s (%s); it offers %s", source, p->features,
                       p->name, offered);
    *out = p;
    return 0;
}

int dp_isa_select(const char *name, dp_err *err)
{
    const char *source = "--isa";
    if (!name || !*name) {
        name = getenv("DPTRAIN_ISA");
        source = "DPTRAIN_ISA";
        if (!name || !*name)
            name = "auto";
    }
    const isa_path *p = NULL;
    if (resolve(name, source, &p, err))
        return -1;
    active = p;
    active_how = !strcmp(name, "auto") ? "chosen from CPUID"
                 : !strcmp(source, "--isa") ? "forced by --isa" : "forced by DPTRAIN_ISA";
    env_problem[0] = '\0';
    return 0;
}

/* Before main: the widest path, or DPTRAIN_ISA's when it is valid here. A bad value is
 * kept for dp_isa_select(NULL) to report, so the driver can fail with a message. */
__attribute__((constructor)) static void isa_startup(void)
{
    __builtin_cpu_init();
    active = widest();
    active_how = "chosen from CPUID";
    dp_err err;
    if (dp_isa_select(NULL, &err)) {
        strncpy(env_problem, err.msg, sizeof env_problem - 1);
        env_problem[sizeof env_problem - 1] = '\0';
    }
}

const char *dp_isa_name(void) { return active->name; }

const char *dp_isa_describe(void)
{
    static char text[128];
    snprintf(text, sizeof text, "%s (%s, %s)", active->name, active->features, active_how);
    return text;
}

const dp_kernel_table *dp_kernels(void) { return active->table; }

/* ---- the products' precision --------------------------------------------------------- */

static const dp_bf16_table *bf16; /* NULL: fp32 */

static int cpu_has_bf16(void)
{
    return !hidden_bf16 && cpu_has(&paths[0]) && __builtin_cpu_supports("avx512bf16");
}

int dp_precision_select(const char *name, dp_err *err)
{
    if (!name || !strcmp(name, "fp32")) {
        bf16 = NULL;
        return 0;
    }
    if (strcmp(name, "bf16"))
        return dp_fail(err, "--precision: unknown precision '%s' (expected fp32 or bf16)", name);
    if (active->table == &dp_kernels_scalar) {
        bf16 = &dp_bf16_scalar;
        return 0;
    }
    if (active->table == &dp_kernels_avx512 && cpu_has_bf16()) {
        bf16 = &dp_bf16_avx512bf16;
        return 0;
    }
    return dp_fail(err, "--precision bf16: %s; bf16 products need AVX512-BF16 (AMD Zen 4 and "
                        "later, Intel Cooper Lake, Sapphire Rapids and later) and the avx512 "
                        "path (or --isa scalar, their exact emulation, slow, for tests); use "
                        "--precision fp32 here",
                   active->table != &dp_kernels_avx512 ? "the kernels run on the avx2 path, "
                                                         "which has no bf16 dot products"
                   : hidden_bf16 || !__builtin_cpu_supports("avx512bf16")
                       ? "this CPU lacks AVX512-BF16 (VDPBF16PS)"
                       : "not available");
}

const dp_bf16_table *dp_bf16(void) { return bf16; }

const char *dp_precision_name(void) { return bf16 ? "bf16" : "fp32"; }

const char *dp_precision_describe(void)
{
    if (!bf16)
        return "fp32";
    return bf16 == &dp_bf16_scalar
               ? "bf16 (fc layers and convolutions with 16 or more columns: bf16 operands, "
                 "fp32 sums, AVX512-BF16 emulated with fmaf on the scalar path; convolutions "
                 "with fewer columns fp32)"
               : "bf16 (fc layers and convolutions with 16 or more columns: bf16 operands, "
                 "fp32 sums, AVX512-BF16 dot products; convolutions with fewer columns fp32)";
}

/* ---- the public kernels ------------------------------------------------------------ */

void gemm_nn_acc(int M, int N, int K, const float *A, int lda, const float *B, int ldb, float *C,
                 int ldc)
{
    active->table->gemm_axpy(M, N, K, A, (size_t)lda, 1, B, ldb, C, ldc, GEMM_ACC, NULL);
}

void gemm_tn_acc(int M, int N, int K, const float *A, int lda, const float *B, int ldb, float *C,
                 int ldc)
{
    active->table->gemm_axpy(M, N, K, A, 1, (size_t)lda, B, ldb, C, ldc, GEMM_ACC, NULL);
}

void gemm_nn(int M, int N, int K, const float *A, int lda, const float *B, int ldb, float *C,
             int ldc)
{
    active->table->gemm_axpy(M, N, K, A, (size_t)lda, 1, B, ldb, C, ldc, GEMM_ZERO, NULL);
}

void gemm_tn(int M, int N, int K, const float *A, int lda, const float *B, int ldb, float *C,
             int ldc)
{
    active->table->gemm_axpy(M, N, K, A, 1, (size_t)lda, B, ldb, C, ldc, GEMM_ZERO, NULL);
}

void gemm_nn_bias(int M, int N, int K, const float *A, int lda, const float *B, int ldb,
                  const float *bias, float *C, int ldc)
{
    active->table->gemm_axpy(M, N, K, A, (size_t)lda, 1, B, ldb, C, ldc, GEMM_BIAS, bias);
}

void gemm_nt_acc(int M, int N, int K, const float *A, int lda, const float *B, int ldb, float *C,
                 int ldc)
{
    active->table->gemm_nt_acc(M, N, K, A, lda, B, ldb, C, ldc);
}

void gemm_nt_acc_lanes(int M, int N, int K, const float *A, int lda, const float *B, int ldb,
                       float *C, int ldc, float *lanes, float *pack)
{
    active->table->gemm_nt_acc_lanes(M, N, K, A, lda, B, ldb, C, ldc, lanes, pack);
}

/* The same bound for every path (kern_dot.c: NT_KC + 16 floats per packed row, two rows
 * of slack for alignment and an odd row of B), so a workspace sized under one path serves
 * any other. */
size_t gemm_nt_pack_floats(int M, int N) { return (size_t)(M + N + 2) * (DP_NT_KC + 16); }

float dot_f32(const float *a, const float *b, int n) { return active->table->dot(a, b, n); }

void fixed_accumulate(float *g, int64_t *acc, size_t n, double scale, double bound,
                      float *maxabs, int64_t *over, int64_t *nonfinite)
{
    active->table->fixed_acc(g, acc, n, scale, bound, maxabs, over, nonfinite);
}

void fixed_take(float *g, int64_t *acc, size_t n, double unscale)
{
    active->table->fixed_take(g, acc, n, unscale);
}

void gemm_tn_fixed(int M, int N, const float *A, int lda, const float *B, int ldb,
                   const int *bounds, int ngroups, size_t ldacc, dp_fixed_block *b, float *pack,
                   size_t pack_floats)
{
    active->table->gemm_tn_fixed(M, N, A, lda, B, ldb, bounds, ngroups, ldacc, b, pack,
                                 pack_floats);
}

void im2col(const float *in, int C, int H, int W, int KH, int KW, int stride, int pad, int OH,
            int OW, float *col)
{
    active->table->im2col(in, 0, C * KH * KW, C, H, W, KH, KW, stride, pad, OH, OW, col,
                          (size_t)OH * OW);
}

void transpose(const float *src, int rows, int cols, float *dst)
{
    active->table->transpose(src, rows, cols, (size_t)cols, dst, (size_t)rows);
}

void row2im_acc(const float *row, int C, int H, int W, int KH, int KW, int stride, int pad, int OH,
                int OW, float *in)
{
    active->table->row2im_acc(row, 0, OH * OW, C, H, W, KH, KW, stride, pad, OH, OW, in);
}

void col2im_acc(const float *col, int C, int H, int W, int KH, int KW, int stride, int pad,
                int OH, int OW, float *in)
{
    active->table->col2im_acc(col, C, H, W, KH, KW, stride, pad, OH, OW, in);
}

void col2im_pixel_order(const float *col, int C, int H, int W, int KH, int KW, int stride,
                        int pad, int OH, int OW, float *in)
{
    active->table->col2im_pixel_order(col, C, H, W, KH, KW, stride, pad, OH, OW, in);
}
