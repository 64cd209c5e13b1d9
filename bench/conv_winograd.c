/* conv_winograd: would Winograd's minimal filtering make a 3x3 convolution's step faster
 * than im2col and the products, on this CPU, with dptrain's own kernels?
 *
 * A probe, not a path of the trainer: it times one layer's forward and backward over a
 * batch at 1 thread, three ways, on MNIST's conv2 shapes (nopool 32x26x26 -> 64x24x24, the
 * reference's 32x13x13 -> 64x11x11), and checks that each computes the convolution.
 *
 * Direct, as the layer does it: per sample im2col, then the forward W.col (64 x OH*OW x
 * 288), the weight gradient col.dY^T and the input gradient W^T.dY with col2im.
 * Winograd F(mxm, 3x3) (Lavin and Gray, 2016), m = 2 or 4, a = m + 2: each a x a input
 * tile d (stride m) becomes V = B^T d B and each filter U = G g G^T (once a batch); a
 * tile's a*a positions are a*a products U_xi (64x32) . V_xi (32 x tiles), and the m x m
 * outputs are A^T M A. Tiles and channels are laid out channels last, so the transforms
 * run along the channels in vector registers and the products take whole rows. Its
 * backward is the exact backward of that forward: dM = A dY A^T, dV_xi = U_xi^T dM_xi,
 * dX += B dV B^T (tiles overlap, added in tile order), dU_xi += dM_xi V_xi^T and
 * dW = G^T dU G. Multiply-adds in the products: 2.25x (m = 2) and 4x (m = 4) fewer than
 * direct; the transforms are a few additions and multiplications by constants per value.
 *
 * Prints, per shape and way, ms a batch forward and backward, direct's time over its, and
 * its largest error against a double-precision direct convolution relative to the largest
 * magnitude of the result (y, dx, dw). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <omp.h>

#include "dptrain/net/isa.h"
#include "dptrain/net/kernels.h"
#include "dptrain/util/rng.h"

#define C_IN 32
#define C_OUT 64
#define KK 9
#define AMAX 6

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

/* One Winograd algorithm: B^T (a x a), G (a x 3), A^T (m x a). */
typedef struct {
    const char *name;
    int a, m;
    float BT[AMAX][AMAX], G[AMAX][3], AT[4][AMAX];
} wino_kind;

static const wino_kind kinds[] = {
    {"F(2x2,3x3)", 4, 2,
     {{1, 0, -1, 0}, {0, 1, 1, 0}, {0, -1, 1, 0}, {0, 1, 0, -1}},
     {{1, 0, 0}, {0.5f, 0.5f, 0.5f}, {0.5f, -0.5f, 0.5f}, {0, 0, 1}},
     {{1, 1, 1, 0}, {0, 1, -1, -1}}},
    {"F(4x4,3x3)", 6, 4,
     {{4, 0, -5, 0, 1, 0}, {0, -4, -4, 1, 1, 0}, {0, 4, -4, -1, 1, 0}, {0, -2, -1, 2, 1, 0},
      {0, 2, -1, -2, 1, 0}, {0, 4, 0, -5, 0, 1}},
     {{1.0f / 4, 0, 0}, {-1.0f / 6, -1.0f / 6, -1.0f / 6}, {-1.0f / 6, 1.0f / 6, -1.0f / 6},
      {1.0f / 24, 1.0f / 12, 1.0f / 6}, {1.0f / 24, -1.0f / 12, 1.0f / 6}, {0, 0, 1}},
     {{1, 1, 1, 1, 1, 0}, {0, 1, -1, 2, -2, 0}, {0, 1, 1, 4, 4, 0}, {0, 1, -1, 8, -8, 1}}},
};

typedef struct {
    const wino_kind *k;          /* NULL: direct */
    int H, W, OH, OW, th, tw, T; /* input, output, tiles down and across, tiles a sample */
    int PH, PW;                  /* the input padded to whole tiles: m th + 2, m tw + 2 */
} geom;

static geom make_geom(int H, int W, const wino_kind *k)
{
    const int m = k ? k->m : 2;
    geom g = {k, H, W, H - 2, W - 2, (H - 2 + m - 1) / m, (W - 2 + m - 1) / m, 0, 0, 0};
    g.T = g.th * g.tw;
    g.PH = m * g.th + 2, g.PW = m * g.tw + 2;
    return g;
}

/* out[r][0..n) = sum over s of M[r][s] in[s][0..n) for r < R, s < S, in s order, terms
 * with a zero coefficient left out (M is ld floats a row; t: M^T instead). Inlined with
 * constant matrices, the coefficients and the zeros are known where it compiles. */
static inline __attribute__((always_inline)) void lin(int R, int S, const float *M, int ld,
                                                      int t, const float *const *in,
                                                      float *const *out, int n)
{
#pragma GCC unroll 6
    for (int r = 0; r < R; r++) {
        float *restrict o = out[r];
        int first = 1;
#pragma GCC unroll 6
        for (int s = 0; s < S; s++) {
            const float c = t ? M[s * ld + r] : M[r * ld + s];
            if (c == 0.0f)
                continue;
            const float *restrict x = in[s];
            if (first)
                for (int i = 0; i < n; i++)
                    o[i] = c * x[i];
            else
                for (int i = 0; i < n; i++)
                    o[i] += c * x[i];
            first = 0;
        }
        if (first)
            memset(o, 0, sizeof(float) * n);
    }
}

/* Vt[a*a][ldv tiles][C_IN] = B^T d B per tile, from xt[PH][PW][C_IN]. */
static inline __attribute__((always_inline)) void
input_transform_k(const float *xt, const geom *g, float *Vt, size_t ldv, const wino_kind *k)
{
    const int a = k->a, m = k->m;
    float h[AMAX][AMAX][C_IN];
    const float *in[AMAX];
    float *out[AMAX];
    for (int i = 0; i < g->th; i++)
        for (int j = 0; j < g->tw; j++) {
            for (int r = 0; r < a; r++) {
                for (int s = 0; s < a; s++)
                    in[s] = xt + ((size_t)(m * i + r) * g->PW + m * j + s) * C_IN;
                for (int q = 0; q < a; q++)
                    out[q] = h[r][q];
                lin(a, a, k->BT[0], AMAX, 0, in, out, C_IN);
            }
            for (int q = 0; q < a; q++) {
                for (int r = 0; r < a; r++) {
                    in[r] = h[r][q];
                    out[r] = Vt + ((size_t)(r * a + q) * ldv + (size_t)i * g->tw + j) * C_IN;
                }
                lin(a, a, k->BT[0], AMAX, 0, in, out, C_IN);
            }
        }
}

__attribute__((target_clones("avx512f", "avx2", "default")))
static void input_transform(const float *xt, const geom *g, float *Vt, size_t ldv)
{
    if (g->k == &kinds[0])
        input_transform_k(xt, g, Vt, ldv, &kinds[0]);
    else
        input_transform_k(xt, g, Vt, ldv, &kinds[1]);
}

/* Yt[OH][OW][C_OUT] = bias + A^T M A from Mt[a*a][ldm tiles][C_OUT]. */
static inline __attribute__((always_inline)) void
output_transform_k(const float *Mt, const float *bias, const geom *g, float *Yt, size_t ldm,
                   const wino_kind *k)
{
    const int a = k->a, m = k->m;
    float r[4][AMAX][C_OUT], y[4][C_OUT];
    const float *in[AMAX];
    float *out[AMAX];
    for (int i = 0; i < g->th; i++)
        for (int j = 0; j < g->tw; j++) {
            for (int q = 0; q < a; q++) {
                for (int p = 0; p < a; p++)
                    in[p] = Mt + ((size_t)(p * a + q) * ldm + (size_t)i * g->tw + j) * C_OUT;
                for (int p = 0; p < m; p++)
                    out[p] = r[p][q];
                lin(m, a, k->AT[0], AMAX, 0, in, out, C_OUT);
            }
            for (int p = 0; p < m; p++) {
                const int oy = m * i + p;
                for (int q = 0; q < a; q++)
                    in[q] = r[p][q];
                for (int q = 0; q < m; q++)
                    out[q] = y[q];
                lin(m, a, k->AT[0], AMAX, 0, in, out, C_OUT);
                for (int q = 0; q < m && oy < g->OH; q++) {
                    const int ox = m * j + q;
                    if (ox >= g->OW)
                        break;
                    float *restrict o = Yt + ((size_t)oy * g->OW + ox) * C_OUT;
                    for (int c = 0; c < C_OUT; c++)
                        o[c] = bias[c] + y[q][c];
                }
            }
        }
}

__attribute__((target_clones("avx512f", "avx2", "default")))
static void output_transform(const float *Mt, const float *bias, const geom *g, float *Yt,
                             size_t ldm)
{
    if (g->k == &kinds[0])
        output_transform_k(Mt, bias, g, Yt, ldm, &kinds[0]);
    else
        output_transform_k(Mt, bias, g, Yt, ldm, &kinds[1]);
}

/* dMt[a*a][ldm tiles][C_OUT] = A dY A^T per tile, from dYt[OH*OW][C_OUT] (zero beyond). */
static inline __attribute__((always_inline)) void
dout_transform_k(const float *dYt, const geom *g, float *dMt, size_t ldm, const wino_kind *k)
{
    static const float zero[C_OUT];
    const int a = k->a, m = k->m;
    float h[4][AMAX][C_OUT];
    const float *in[AMAX];
    float *out[AMAX];
    for (int i = 0; i < g->th; i++)
        for (int j = 0; j < g->tw; j++) {
            for (int p = 0; p < m; p++) {
                const int oy = m * i + p;
                for (int q = 0; q < m; q++) {
                    const int ox = m * j + q;
                    in[q] = oy < g->OH && ox < g->OW ? dYt + ((size_t)oy * g->OW + ox) * C_OUT
                                                     : zero;
                }
                for (int q = 0; q < a; q++)
                    out[q] = h[p][q];
                lin(a, m, k->AT[0], AMAX, 1, in, out, C_OUT);
            }
            for (int q = 0; q < a; q++) {
                for (int p = 0; p < m; p++)
                    in[p] = h[p][q];
                for (int p = 0; p < a; p++)
                    out[p] = dMt + ((size_t)(p * a + q) * ldm + (size_t)i * g->tw + j) * C_OUT;
                lin(a, m, k->AT[0], AMAX, 1, in, out, C_OUT);
            }
        }
}

__attribute__((target_clones("avx512f", "avx2", "default")))
static void dout_transform(const float *dYt, const geom *g, float *dMt, size_t ldm)
{
    if (g->k == &kinds[0])
        dout_transform_k(dYt, g, dMt, ldm, &kinds[0]);
    else
        dout_transform_k(dYt, g, dMt, ldm, &kinds[1]);
}

/* dXt[PH][PW][C_IN] = the sum over tiles, in tile order, of B dV B^T, from
 * dVt[a*a][ldv tiles][C_IN] (dXt zeroed here). */
static inline __attribute__((always_inline)) void
input_grad_transform_k(const float *dVt, const geom *g, size_t ldv, float *dXt, const wino_kind *k)
{
    const int a = k->a, m = k->m;
    memset(dXt, 0, sizeof(float) * g->PH * g->PW * C_IN);
    float e[AMAX][AMAX][C_IN], dd[AMAX][C_IN];
    const float *in[AMAX];
    float *out[AMAX];
    for (int i = 0; i < g->th; i++)
        for (int j = 0; j < g->tw; j++) {
            for (int q = 0; q < a; q++) {
                for (int p = 0; p < a; p++) {
                    in[p] = dVt + ((size_t)(p * a + q) * ldv + (size_t)i * g->tw + j) * C_IN;
                    out[p] = e[p][q];
                }
                lin(a, a, k->BT[0], AMAX, 1, in, out, C_IN);
            }
            for (int r = 0; r < a; r++) {
                for (int q = 0; q < a; q++)
                    in[q] = e[r][q], out[q] = dd[q];
                lin(a, a, k->BT[0], AMAX, 1, in, out, C_IN);
                float *d = dXt + ((size_t)(m * i + r) * g->PW + m * j) * C_IN;
                for (int s = 0; s < a; s++)
                    for (int c = 0; c < C_IN; c++)
                        d[s * C_IN + c] += dd[s][c];
            }
        }
}

__attribute__((target_clones("avx512f", "avx2", "default")))
static void input_grad_transform(const float *dVt, const geom *g, size_t ldv, float *dXt)
{
    if (g->k == &kinds[0])
        input_grad_transform_k(dVt, g, ldv, dXt, &kinds[0]);
    else
        input_grad_transform_k(dVt, g, ldv, dXt, &kinds[1]);
}

/* U[a*a][C_OUT][C_IN] = G w G^T and its adjoint dW = G^T dU G. */
static void filter_transform(const wino_kind *k, const float *w, float *U)
{
    const int a = k->a;
    for (int o = 0; o < C_OUT; o++)
        for (int c = 0; c < C_IN; c++) {
            const float *f = w + ((size_t)o * C_IN + c) * KK;
            for (int r = 0; r < a; r++)
                for (int s = 0; s < a; s++) {
                    float u = 0.0f;
                    for (int p = 0; p < 3; p++)
                        for (int q = 0; q < 3; q++)
                            u += k->G[r][p] * f[p * 3 + q] * k->G[s][q];
                    U[((size_t)(r * a + s) * C_OUT + o) * C_IN + c] = u;
                }
        }
}

static void filter_grad(const wino_kind *k, const float *dU, float *dw)
{
    const int a = k->a;
    for (int o = 0; o < C_OUT; o++)
        for (int c = 0; c < C_IN; c++)
            for (int p = 0; p < 3; p++)
                for (int q = 0; q < 3; q++) {
                    float s = 0.0f;
                    for (int r = 0; r < a; r++)
                        for (int t = 0; t < a; t++)
                            s += k->G[r][p] * dU[((size_t)(r * a + t) * C_OUT + o) * C_IN + c] *
                                 k->G[t][q];
                    dw[((size_t)o * C_IN + c) * KK + p * 3 + q] = s;
                }
}

typedef struct {
    float *x, *w, *bias, *dy;          /* inputs: [B][C_IN][H][W], weights, [B][C_OUT][OH][OW] */
    float *y, *dx, *dw;                /* outputs */
    float *col, *dcol, *dyt;           /* direct's scratch */
    float *U, *V, *Mx, *dU, *pad;      /* Winograd's scratch (Mx: M, dM or dV) */
} bufs;

static void direct_forward(bufs *b, const geom *g, int B)
{
    const int P = g->OH * g->OW;
    for (int n = 0; n < B; n++) {
        im2col(b->x + (size_t)n * C_IN * g->H * g->W, C_IN, g->H, g->W, 3, 3, 1, 0, g->OH, g->OW,
               b->col);
        gemm_nn_bias(C_OUT, P, C_IN * KK, b->w, C_IN * KK, b->col, P, b->bias,
                     b->y + (size_t)n * C_OUT * P, P);
    }
}

static void direct_backward(bufs *b, const geom *g, int B)
{
    const int P = g->OH * g->OW, K = C_IN * KK;
    memset(b->dU, 0, sizeof(float) * K * C_OUT);
    for (int n = 0; n < B; n++) {
        const float *dy = b->dy + (size_t)n * C_OUT * P;
        float *dx = b->dx + (size_t)n * C_IN * g->H * g->W;
        im2col(b->x + (size_t)n * C_IN * g->H * g->W, C_IN, g->H, g->W, 3, 3, 1, 0, g->OH, g->OW,
               b->col);
        transpose(dy, C_OUT, P, b->dyt);
        gemm_nn_acc(K, C_OUT, P, b->col, P, b->dyt, C_OUT, b->dU, C_OUT); /* dW^T */
        gemm_tn(K, P, C_OUT, b->w, K, dy, P, b->dcol, P);
        memset(dx, 0, sizeof(float) * C_IN * g->H * g->W);
        col2im_acc(b->dcol, C_IN, g->H, g->W, 3, 3, 1, 0, g->OH, g->OW, dx);
    }
    transpose(b->dU, K, C_OUT, b->dw);
}

/* Samples a product takes together: enough tiles for rows of 144 or more (the
 * reference's 36 or 9 a sample are too few alone). */
static int chunk(const geom *g, int B)
{
    const int S = (144 + g->T - 1) / g->T;
    return S < B ? S : B;
}

/* One sample's input channels last, zero-padded to whole tiles: xt[PH][PW][C_IN]. */
static void input_cl(const float *x, const geom *g, float *tmp, float *xt)
{
    if (g->PH == g->H && g->PW == g->W) {
        transpose(x, C_IN, g->H * g->W, xt);
        return;
    }
    transpose(x, C_IN, g->H * g->W, tmp);
    memset(xt, 0, sizeof(float) * g->PH * g->PW * C_IN);
    for (int y = 0; y < g->H; y++)
        memcpy(xt + (size_t)y * g->PW * C_IN, tmp + (size_t)y * g->W * C_IN,
               sizeof(float) * g->W * C_IN);
}

static void wino_forward(bufs *b, const geom *g, int B)
{
    const int T = g->T, P = g->OH * g->OW, S0 = chunk(g, B), X = g->k->a * g->k->a;
    filter_transform(g->k, b->w, b->U);
    float *Ut = b->dU; /* U transposed per position: [X][C_IN][C_OUT] */
    for (int xi = 0; xi < X; xi++)
        transpose(b->U + (size_t)xi * C_OUT * C_IN, C_OUT, C_IN, Ut + (size_t)xi * C_IN * C_OUT);
    for (int n0 = 0; n0 < B; n0 += S0) {
        const int S = B - n0 < S0 ? B - n0 : S0;
        const size_t N = (size_t)S * T;
        for (int s = 0; s < S; s++) {
            input_cl(b->x + (size_t)(n0 + s) * C_IN * g->H * g->W, g, b->dcol, b->pad);
            input_transform(b->pad, g, b->V + (size_t)s * T * C_IN, N);
        }
        for (int xi = 0; xi < X; xi++)
            gemm_nn(N, C_OUT, C_IN, b->V + (size_t)xi * N * C_IN, C_IN,
                    Ut + (size_t)xi * C_IN * C_OUT, C_OUT, b->Mx + (size_t)xi * N * C_OUT, C_OUT);
        for (int s = 0; s < S; s++) {
            output_transform(b->Mx + (size_t)s * T * C_OUT, b->bias, g, b->dyt, N);
            transpose(b->dyt, P, C_OUT, b->y + (size_t)(n0 + s) * C_OUT * P);
        }
    }
}

static void wino_backward(bufs *b, const geom *g, int B)
{
    const int T = g->T, P = g->OH * g->OW, S0 = chunk(g, B), X = g->k->a * g->k->a;
    filter_transform(g->k, b->w, b->U);
    float *dU = b->dU + (size_t)X * C_OUT * C_IN; /* [X][C_OUT][C_IN] */
    memset(dU, 0, sizeof(float) * X * C_OUT * C_IN);
    for (int n0 = 0; n0 < B; n0 += S0) {
        const int S = B - n0 < S0 ? B - n0 : S0;
        const size_t N = (size_t)S * T;
        float *dMt = b->Mx, *dVt = b->Mx + (size_t)X * C_OUT * N;
        for (int s = 0; s < S; s++) {
            const int n = n0 + s;
            input_cl(b->x + (size_t)n * C_IN * g->H * g->W, g, b->dcol, b->pad);
            input_transform(b->pad, g, b->V + (size_t)s * T * C_IN, N);
            transpose(b->dy + (size_t)n * C_OUT * P, C_OUT, P, b->dyt);
            dout_transform(b->dyt, g, dMt + (size_t)s * T * C_OUT, N);
        }
        for (int xi = 0; xi < X; xi++) {
            const float *m = dMt + (size_t)xi * N * C_OUT;
            gemm_tn_acc(C_OUT, C_IN, N, m, C_OUT, b->V + (size_t)xi * N * C_IN, C_IN,
                        dU + (size_t)xi * C_OUT * C_IN, C_IN);
            gemm_nn(N, C_IN, C_OUT, m, C_OUT, b->U + (size_t)xi * C_OUT * C_IN, C_IN,
                    dVt + (size_t)xi * N * C_IN, C_IN);
        }
        for (int s = 0; s < S; s++) {
            float *dx = b->dx + (size_t)(n0 + s) * C_IN * g->H * g->W;
            input_grad_transform(dVt + (size_t)s * T * C_IN, g, N, b->pad);
            transpose(b->pad, g->PH * g->PW, C_IN, b->dcol);
            for (int c = 0; c < C_IN; c++)
                for (int y = 0; y < g->H; y++)
                    memcpy(dx + ((size_t)c * g->H + y) * g->W,
                           b->dcol + ((size_t)c * g->PH + y) * g->PW, sizeof(float) * g->W);
        }
    }
    filter_grad(g->k, dU, b->dw);
}

static void layer_forward(bufs *b, const geom *g, int B)
{
    (g->k ? wino_forward : direct_forward)(b, g, B);
}

static void layer_backward(bufs *b, const geom *g, int B)
{
    (g->k ? wino_backward : direct_backward)(b, g, B);
}

/* The layer's three results in double, straight from the definition. */
static void reference(const bufs *b, const geom *g, int B, double *y, double *dx, double *dw)
{
    const int H = g->H, W = g->W, OH = g->OH, OW = g->OW;
    memset(dx, 0, sizeof(double) * B * C_IN * H * W);
    memset(dw, 0, sizeof(double) * C_OUT * C_IN * KK);
    for (int n = 0; n < B; n++)
        for (int k = 0; k < C_OUT; k++)
            for (int oy = 0; oy < OH; oy++)
                for (int ox = 0; ox < OW; ox++) {
                    double s = b->bias[k];
                    const double d = b->dy[(((size_t)n * C_OUT + k) * OH + oy) * OW + ox];
                    for (int c = 0; c < C_IN; c++)
                        for (int p = 0; p < 9; p++) {
                            const size_t xi = (((size_t)n * C_IN + c) * H + oy + p / 3) * W +
                                              ox + p % 3;
                            const size_t wi = ((size_t)k * C_IN + c) * KK + p;
                            s += (double)b->w[wi] * b->x[xi];
                            dx[xi] += d * b->w[wi];
                            dw[wi] += d * b->x[xi];
                        }
                    y[(((size_t)n * C_OUT + k) * OH + oy) * OW + ox] = s;
                }
}

static double rel_err(const float *got, const double *want, size_t n)
{
    double err = 0.0, big = 0.0;
    for (size_t i = 0; i < n; i++) {
        err = fmax(err, fabs(got[i] - want[i]));
        big = fmax(big, fabs(want[i]));
    }
    return err / big;
}

static float *rand_buf(dp_rng *r, size_t n, float scale)
{
    float *p = malloc(sizeof(float) * n);
    for (size_t i = 0; i < n; i++)
        p[i] = scale * (rng_uniform(r) - 0.5f);
    return p;
}

#define WAYS 3

static double median(double *t, int n)
{
    for (int i = 1; i < n; i++)
        for (int k = i; k > 0 && t[k] < t[k - 1]; k--) {
            const double x = t[k];
            t[k] = t[k - 1], t[k - 1] = x;
        }
    return t[n / 2];
}

static void run_shape(const char *name, int H, int B, int reps)
{
    geom g[WAYS];
    g[0] = make_geom(H, H, NULL);
    for (int w = 1; w < WAYS; w++)
        g[w] = make_geom(H, H, &kinds[w - 1]);
    const size_t nx = (size_t)B * C_IN * H * H, ny = (size_t)B * C_OUT * g[0].OH * g[0].OW;
    const size_t P = (size_t)g[0].OH * g[0].OW, K = C_IN * KK, X = AMAX * AMAX;
    size_t N = 0, pad = 0; /* the most tiles a product takes, the largest padded input */
    for (int w = 1; w < WAYS; w++) {
        const size_t n = (size_t)chunk(&g[w], B) * g[w].T, p = (size_t)g[w].PH * g[w].PW;
        N = n > N ? n : N, pad = p > pad ? p : pad;
    }
    dp_rng r;
    rng_seed(&r, 11, 12, 13);
    /* dyt also holds a sample's output channels last, dcol its input */
    bufs b = {rand_buf(&r, nx, 2.0f), rand_buf(&r, C_OUT * K, 0.1f), rand_buf(&r, C_OUT, 0.1f),
              rand_buf(&r, ny, 0.02f), malloc(sizeof(float) * ny), malloc(sizeof(float) * nx),
              malloc(sizeof(float) * C_OUT * K), malloc(sizeof(float) * K * P),
              malloc(sizeof(float) * K * P), malloc(sizeof(float) * C_OUT * P),
              malloc(sizeof(float) * X * C_OUT * C_IN), malloc(sizeof(float) * X * C_IN * N),
              malloc(sizeof(float) * X * (C_OUT + C_IN) * N),
              malloc(sizeof(float) * (2 * X * C_OUT * C_IN + K * C_OUT)),
              malloc(sizeof(float) * C_IN * pad)};
    /* the check on 4 samples: the double reference is slow */
    const int Bc = B < 4 ? B : 4;
    double *y = malloc(sizeof(double) * ny), *dx = malloc(sizeof(double) * nx);
    double *dw = malloc(sizeof(double) * C_OUT * K);
    reference(&b, &g[0], Bc, y, dx, dw);
    double err[WAYS][3], t[WAYS][2][64], ms[WAYS][2];
    for (int w = 0; w < WAYS; w++) {
        layer_forward(&b, &g[w], Bc);
        layer_backward(&b, &g[w], Bc);
        err[w][0] = rel_err(b.y, y, (size_t)Bc * C_OUT * P);
        err[w][1] = rel_err(b.dx, dx, (size_t)Bc * C_IN * H * H);
        err[w][2] = rel_err(b.dw, dw, C_OUT * K);
    }
    for (int i = -1; i < reps; i++) /* the ways alternate; the first round warms up */
        for (int w = 0; w < WAYS; w++) {
            const double t0 = now();
            layer_forward(&b, &g[w], B);
            const double t1 = now();
            layer_backward(&b, &g[w], B);
            if (i >= 0)
                t[w][0][i] = 1e3 * (t1 - t0), t[w][1][i] = 1e3 * (now() - t1);
        }
    for (int w = 0; w < WAYS; w++)
        for (int d = 0; d < 2; d++)
            ms[w][d] = median(t[w][d], reps);
    const double flops = 2.0 * C_OUT * K * P * B, both0 = ms[0][0] + ms[0][1];
    for (int w = 0; w < WAYS; w++) {
        char tiles[16] = "-";
        if (w)
            snprintf(tiles, sizeof tiles, "%d", g[w].T);
        printf("%-7s %2dx%-2d %-11s %5s %9.2f %9.2f %9.2f %7.2fx %6.0f  %.0e %.0e %.0e\n", name,
               H, H, w ? kinds[w - 1].name : "direct", tiles, ms[w][0], ms[w][1],
               ms[w][0] + ms[w][1], both0 / (ms[w][0] + ms[w][1]),
               3 * flops / (ms[w][0] + ms[w][1]) * 1e-6, err[w][0], err[w][1], err[w][2]);
    }
    free(b.x), free(b.w), free(b.bias), free(b.dy), free(b.y), free(b.dx), free(b.dw);
    free(b.col), free(b.dcol), free(b.dyt), free(b.U), free(b.V), free(b.Mx), free(b.dU);
    free(b.pad), free(y), free(dx), free(dw);
}

int main(int argc, char **argv)
{
    int B = 100, reps = 7;
    const char *isa = NULL;
    for (int i = 1; i < argc; i++) {
        if (i + 1 < argc && !strcmp(argv[i], "--batch"))
            B = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--reps"))
            reps = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--isa"))
            isa = argv[++i];
        else {
            fprintf(stderr, "usage: conv_winograd [--batch N] [--reps N] [--isa PATH]\n");
            return 2;
        }
    }
    if (B < 1 || reps < 1 || reps > 64) {
        fprintf(stderr, "conv_winograd: --batch must be >= 1 and --reps 1..64\n");
        return 2;
    }
    dp_err err;
    if (isa && dp_isa_select(isa, &err)) {
        fprintf(stderr, "conv_winograd: %s\n", err.msg);
        return 2;
    }
    omp_set_num_threads(1);
    printf("conv2 (32 -> 64 channels, 3x3) at 1 thread, batch %d, medians of %d alternating "
           "repetitions, products on %s\n", B, reps, dp_isa_name());
    printf("%-13s %-11s %5s %9s %9s %9s %8s %6s  %s\n", "shape", "way", "tiles", "fwd ms",
           "bwd ms", "both ms", "speedup", "GF/s*", "error (y, dx, dw)");
    run_shape("nopool", 26, B, reps);
    run_shape("ref", 13, B, reps);
    printf("* GFLOP/s of direct's multiply-adds (3 x 2 x 64 x 288 x OH*OW a sample) over the "
           "way's time\n");
    return 0;
}
