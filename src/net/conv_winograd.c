/* conv_winograd: --conv-algorithm winograd, Winograd's F(4x4, 3x3) for the convolutions it
 * suits (isa.h says which), the pieces conv.c calls.
 *
 * A sample's input goes channels last and zero-padded to whole tiles (6 x 6, 4 apart);
 * kern_wino_in makes each tile's 36 positions V; per position xi a product over the
 * tiles of a few samples at once, M_xi[tiles][OC] = V_xi[tiles][C] U_xi^T, where
 * U = G g G^T is the filter's transform; kern_wino_out makes the outputs bias + A^T M A.
 * The backward is that forward's exact adjoint: dM = A dY A^T; the input gradient
 * dV_xi = dM_xi U_xi, then B dV B^T added into the input's gradient tile by tile; the
 * weight gradient dU_xi[OC][C] += dM_xi^T V_xi over the samples, then dW = G^T dU G.
 *
 * The products are dptrain's (kernels.h: one chain of fused multiply-adds in k order per
 * element), the transforms a fixed sequence of operations (kern_winograd.c), so the bits
 * are the same on every path and for any split: a forward or input-gradient element's
 * chains run over channels, never over samples or tiles, and a weight gradient element's
 * chain over the tiles of its samples in order, continued from product to product, so
 * that how many samples a product takes changes nothing. For 4 x 4 outputs the products
 * do 4x fewer multiply-adds than im2col's (36 per 16 outputs and channel pair, against
 * 144); rounding differs from the direct convolution's by a few units in the sixth
 * digit (bench/conv_winograd: 5e-6 of the largest output). */
#include <string.h>

#include "conv_impl.h"
#include "dptrain/net/isa.h"
#include "dptrain/net/kernels.h"
#include "dptrain/util/error.h"
#include "kernel_table.h"

#define POS 36 /* positions of a 6 x 6 tile */

/* Tiles a product takes at least: rows enough for the products to run near their speed
 * (nopool's conv2: 36 tiles a sample, so 2 samples; the reference's: 9, so 8). */
#define WINO_ROWS 72

static int winograd_on;

int dp_conv_algorithm_select(const char *name, dp_err *err)
{
    if (!name || !strcmp(name, "direct")) {
        winograd_on = 0;
        return 0;
    }
    if (strcmp(name, "winograd"))
        return dp_fail(err, "--conv-algorithm: unknown algorithm '%s' (expected direct or "
                            "winograd)", name);
    winograd_on = 1;
    return 0;
}

const char *dp_conv_algorithm_name(void) { return winograd_on ? "winograd" : "direct"; }

const char *dp_conv_algorithm_describe(void)
{
    if (!winograd_on)
        return "direct (im2col and the products) for every convolution";
    return dp_bf16() ? "winograd selected, but all direct under --precision bf16"
                     : "winograd F(4x4, 3x3) for the 3x3 convolutions with stride 1, no "
                       "padding and 2 or more input channels; the others direct";
}

int conv_winograd(const dp_conv_shape *s)
{
    return winograd_on && s->KH == 3 && s->KW == 3 && s->stride == 1 && s->pad == 0 &&
           s->C * 9 >= CONV_ROWS_MIN_K && s->OH > 0 && s->OW > 0 && conv2d_col_is_input(s) &&
           !dp_bf16();
}

typedef struct {
    int th, tw, T, PH, PW, S; /* tiles down, across, a sample; the padded input; samples */
    size_t N;                 /* tiles a product takes: S T */
} wgeom;

static wgeom geom(const dp_conv_shape *s)
{
    wgeom g;
    g.th = (s->OH + 3) / 4, g.tw = (s->OW + 3) / 4, g.T = g.th * g.tw;
    g.PH = 4 * g.th + 2, g.PW = 4 * g.tw + 2;
    g.S = (WINO_ROWS + g.T - 1) / g.T;
    g.N = (size_t)g.S * g.T;
    return g;
}

int wino_chunk(const dp_conv_shape *s) { return geom(s).S; }

/* A thread's work area: V [POS][N][C], M or dM [POS][N][OC], dV [POS][N][C], the padded
 * input or its gradient channels last [PH][PW][C], a sample's transposition, dU
 * [POS][OC][C]. */
typedef struct {
    float *V, *M, *dV, *pad, *tmp, *dU;
} warea;

static size_t tmp_floats(const dp_conv_shape *s, const wgeom *g)
{
    const size_t out = (size_t)s->OH * s->OW * s->OC, in = (size_t)g->PH * g->PW * s->C;
    return out > in ? out : in;
}

static warea area(float *work, const dp_conv_shape *s)
{
    const wgeom g = geom(s);
    warea a;
    a.V = work;
    a.M = a.V + POS * g.N * s->C;
    a.dV = a.M + POS * g.N * s->OC;
    a.pad = a.dV + POS * g.N * s->C;
    a.tmp = a.pad + (size_t)g.PH * g.PW * s->C;
    a.dU = a.tmp + tmp_floats(s, &g);
    return a;
}

size_t wino_work_floats(const dp_conv_shape *s)
{
    if (!conv_winograd(s))
        return 0;
    const wgeom g = geom(s);
    return POS * g.N * (2 * (size_t)s->C + s->OC) + (size_t)g.PH * g.PW * s->C +
           tmp_floats(s, &g) + (size_t)POS * s->OC * s->C;
}

size_t wino_filter_floats(const dp_conv_shape *s)
{
    return conv_winograd(s) ? (size_t)2 * POS * s->OC * s->C : 0;
}

/* uw: U [POS][OC][C] (kern_wino_filter), then U^T per position [POS][C][OC]. */
void wino_filters(const float *weight, float *uw, const dp_conv_shape *s)
{
    const int OC = s->OC, C = s->C;
    const size_t n = (size_t)OC * C;
    float *U = uw, *Ut = uw + POS * n;
    const dp_kernel_table *kt = dp_kernels();
    /* Ut, made from U next, first holds the weights' 9 taps' planes and the kernel's work */
    kt->transpose(weight, (int)n, 9, 9, Ut, n);
    kt->wino_filter(Ut, n, U, Ut + 9 * n);
    for (int xi = 0; xi < POS; xi++)
        kt->transpose(U + xi * n, OC, C, (size_t)C, Ut + xi * n, (size_t)OC);
}

/* Channels c0..c1-1 of a sample's input [C][H][W] into a.pad, channels last and padded. */
static void input_last(const float *in_n, int c0, int c1, const warea *a, const wgeom *g,
                       const dp_conv_shape *s)
{
    const dp_kernel_table *kt = dp_kernels();
    const int nc = c1 - c0;
    const size_t HW = (size_t)s->H * s->W;
    if (g->PH == s->H && g->PW == s->W) {
        kt->transpose(in_n + c0 * HW, nc, (int)HW, HW, a->pad, (size_t)nc);
        return;
    }
    kt->transpose(in_n + c0 * HW, nc, (int)HW, HW, a->tmp, (size_t)nc);
    memset(a->pad, 0, sizeof(float) * g->PH * g->PW * nc);
    for (int y = 0; y < s->H; y++)
        memcpy(a->pad + (size_t)y * g->PW * nc, a->tmp + (size_t)y * s->W * nc,
               sizeof(float) * s->W * nc);
}

/* Sample j of a run of S: channels c0..c1-1 of its tiles' V, [POS][S T][c1 - c0]. */
void wino_input_sample(const float *in_n, int c0, int c1, int j, int S, float *work,
                       const dp_conv_shape *s)
{
    const wgeom g = geom(s);
    const warea a = area(work, s);
    const int nc = c1 - c0;
    input_last(in_n, c0, c1, &a, &g, s);
    dp_kernels()->wino_in(a.pad, g.PW, g.th, g.tw, nc, a.V + (size_t)j * g.T * nc,
                          (size_t)S * g.T * nc);
}

void wino_forward_chunk(const float *in, int S, const float *uw, float *work,
                        const dp_conv_shape *s)
{
    const wgeom g = geom(s);
    const warea a = area(work, s);
    const size_t CHW = (size_t)s->C * s->H * s->W, N = (size_t)S * g.T;
    const float *Ut = uw + (size_t)POS * s->OC * s->C;
    for (int j = 0; j < S; j++)
        wino_input_sample(in + j * CHW, 0, s->C, j, S, work, s);
    for (int xi = 0; xi < POS; xi++)
        gemm_nn((int)N, s->OC, s->C, a.V + xi * N * s->C, s->C, Ut + (size_t)xi * s->C * s->OC,
                s->OC, a.M + xi * N * s->OC, s->OC);
}

void wino_forward_out(const float *bias, int j, int S, float *out_n, float *work,
                      const dp_conv_shape *s)
{
    const wgeom g = geom(s);
    const warea a = area(work, s);
    const dp_kernel_table *kt = dp_kernels();
    const int P = s->OH * s->OW;
    kt->wino_out(a.M + (size_t)j * g.T * s->OC, (size_t)S * g.T * s->OC, g.th, g.tw, s->OC,
                 bias, a.tmp, s->OH, s->OW);
    kt->transpose(a.tmp, P, s->OC, (size_t)s->OC, out_n, (size_t)P);
}

/* Sample j of a run of S: its output gradient [OC][OH][OW] into dM, [POS][S T][OC]. */
void wino_dout_sample(const float *dout_n, int j, int S, float *work, const dp_conv_shape *s)
{
    const wgeom g = geom(s);
    const warea a = area(work, s);
    const dp_kernel_table *kt = dp_kernels();
    const int P = s->OH * s->OW;
    kt->transpose(dout_n, s->OC, P, (size_t)P, a.tmp, (size_t)s->OC);
    kt->wino_dout(a.tmp, s->OH, s->OW, g.th, g.tw, s->OC, a.M + (size_t)j * g.T * s->OC,
                  (size_t)S * g.T * s->OC);
}

/* dU[xi][OC][c0..c1) = (first run) or += dM_xi^T V_xi over the run's S T tiles (V of
 * those channels). */
void wino_wgrad_chunk(int S, int c0, int c1, int first, float *work, const dp_conv_shape *s)
{
    const wgeom g = geom(s);
    const warea a = area(work, s);
    const size_t N = (size_t)S * g.T;
    const int nc = c1 - c0;
    for (int xi = 0; xi < POS; xi++)
        (first ? gemm_tn : gemm_tn_acc)(s->OC, nc, (int)N, a.M + xi * N * s->OC, s->OC,
                                        a.V + xi * N * nc, nc,
                                        a.dU + (size_t)xi * s->OC * s->C + c0, s->C);
}

/* dweight[k][c][3][3] += G^T dU G for the channels c0..c1-1 (kern_wino_wgrad). */
void wino_wgrad_end(float *dweight, int c0, int c1, const float *work, const dp_conv_shape *s)
{
    dp_kernels()->wino_wgrad(area((float *)work, s).dU, s->OC, s->C, c0, c1, dweight);
}

/* Sample j's input gradient [C][H][W] (overwritten) from its tiles' dV. */
static void din_sample(int j, int S, float *din_n, const warea *ap, const wgeom *gp,
                       const dp_conv_shape *s)
{
    const wgeom g = *gp;
    const warea a = *ap;
    const dp_kernel_table *kt = dp_kernels();
    const size_t PHW = (size_t)g.PH * g.PW;
    memset(a.pad, 0, sizeof(float) * PHW * s->C);
    kt->wino_din(a.dV + (size_t)j * g.T * s->C, (size_t)S * g.T * s->C, g.th, g.tw, s->C, a.pad,
                 g.PW);
    if (g.PH == s->H && g.PW == s->W) {
        kt->transpose(a.pad, (int)PHW, s->C, (size_t)s->C, din_n, PHW);
        return;
    }
    kt->transpose(a.pad, (int)PHW, s->C, (size_t)s->C, a.tmp, PHW);
    for (int c = 0; c < s->C; c++)
        for (int y = 0; y < s->H; y++)
            memcpy(din_n + ((size_t)c * s->H + y) * s->W, a.tmp + c * PHW + (size_t)y * g.PW,
                   sizeof(float) * s->W);
}

/* The run's input gradient: dV_xi = dM_xi U_xi over its tiles, then each sample's. */
void wino_input_grad_chunk(int S, const float *uw, float *din, float *work,
                           const dp_conv_shape *s)
{
    const wgeom g = geom(s);
    const warea a = area(work, s);
    const size_t N = (size_t)S * g.T, CHW = (size_t)s->C * s->H * s->W;
    for (int xi = 0; xi < POS; xi++)
        gemm_nn((int)N, s->C, s->OC, a.M + xi * N * s->OC, s->OC, uw + (size_t)xi * s->OC * s->C,
                s->C, a.dV + xi * N * s->C, s->C);
    for (int j = 0; j < S; j++)
        din_sample(j, S, din + j * CHW, &a, &g, s);
}
