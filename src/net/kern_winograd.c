/* kern_winograd: the transforms of Winograd's F(4x4, 3x3) (Lavin and Gray, 2016) for
 * --conv-algorithm winograd (conv_winograd.c), channels last.
 *
 * A 6x6 input tile d (tiles 4 apart) becomes V = B^T d B; the products make
 * M = U . V per position (U = G g G^T, the filter's); the 4x4 outputs are A^T M A. The
 * backward transforms are the adjoints: dM = A dY A^T and dd = B dV B^T, added into the
 * input's gradient where tiles overlap, in tile order. Every value is a fixed sequence of
 * multiplications by constants and additions, written out below in the order C evaluates
 * them, with no fused multiply-add (-ffp-contract=off): the same bits on every path,
 * however the compiler vectorises the loops along the channels. Compiled once per path
 * like every kernel, so each runs with its path's vectors. */
#include "simd.h"
#include "winograd_g.h"

/* Channels a transform holds in its tile buffers at once. */
#define CB 64

/* B^T along one line of 6 (input). */
#define BT6(o, d, c)                                                                        \
    do {                                                                                   \
        o[0][c] = 4.0f * d[0][c] - 5.0f * d[2][c] + d[4][c];                               \
        o[1][c] = -4.0f * d[1][c] - 4.0f * d[2][c] + d[3][c] + d[4][c];                    \
        o[2][c] = 4.0f * d[1][c] - 4.0f * d[2][c] - d[3][c] + d[4][c];                     \
        o[3][c] = -2.0f * d[1][c] - d[2][c] + 2.0f * d[3][c] + d[4][c];                    \
        o[4][c] = 2.0f * d[1][c] - d[2][c] - 2.0f * d[3][c] + d[4][c];                     \
        o[5][c] = 4.0f * d[1][c] - 5.0f * d[3][c] + d[5][c];                               \
    } while (0)

/* B along one line of 6 (the input gradient): B^T's adjoint. */
#define B6(o, v, c)                                                                         \
    do {                                                                                   \
        o[0][c] = 4.0f * v[0][c];                                                          \
        o[1][c] = -4.0f * v[1][c] + 4.0f * v[2][c] - 2.0f * v[3][c] + 2.0f * v[4][c] +     \
                  4.0f * v[5][c];                                                          \
        o[2][c] = -5.0f * v[0][c] - 4.0f * v[1][c] - 4.0f * v[2][c] - v[3][c] - v[4][c];   \
        o[3][c] = v[1][c] - v[2][c] + 2.0f * v[3][c] - 2.0f * v[4][c] - 5.0f * v[5][c];    \
        o[4][c] = v[0][c] + v[1][c] + v[2][c] + v[3][c] + v[4][c];                         \
        o[5][c] = v[5][c];                                                                 \
    } while (0)

/* A^T along one line of 6 into 4 (output). */
#define AT6(o, m, c)                                                                        \
    do {                                                                                   \
        o[0][c] = m[0][c] + m[1][c] + m[2][c] + m[3][c] + m[4][c];                         \
        o[1][c] = m[1][c] - m[2][c] + 2.0f * m[3][c] - 2.0f * m[4][c];                     \
        o[2][c] = m[1][c] + m[2][c] + 4.0f * m[3][c] + 4.0f * m[4][c];                     \
        o[3][c] = m[1][c] - m[2][c] + 8.0f * m[3][c] - 8.0f * m[4][c] + m[5][c];           \
    } while (0)

/* A along one line of 4 into 6 (the output's gradient): A^T's adjoint. */
#define A4(o, y, c)                                                                         \
    do {                                                                                   \
        o[0][c] = y[0][c];                                                                 \
        o[1][c] = y[0][c] + y[1][c] + y[2][c] + y[3][c];                                   \
        o[2][c] = y[0][c] - y[1][c] + y[2][c] - y[3][c];                                   \
        o[3][c] = y[0][c] + 2.0f * y[1][c] + 4.0f * y[2][c] + 8.0f * y[3][c];              \
        o[4][c] = y[0][c] - 2.0f * y[1][c] + 4.0f * y[2][c] - 8.0f * y[3][c];              \
        o[5][c] = y[3][c];                                                                 \
    } while (0)

static const float zeros[CB];

/* dst[0..n) = src[0..n) in vectors: a memcpy of a size known only at run time becomes `rep
 * movsq`, whose start-up took half of kern_wino_in's time (Zen 5, perf annotate). */
ALWAYS_INLINE void copy_floats(float *restrict dst, const float *restrict src, int n)
{
    int c = 0;
    for (; c + VW <= n; c += VW)
        vf_store(dst + c, vf_load(src + c));
    if (c < n) {
        const vmask m = vm_first(n - c);
        vf_store_m(dst + c, m, vf_load_m(src + c, m));
    }
}

/* Vt[xi*xs + t*n + c] = (B^T d B)[xi] of tile t = i*tw + j, channel c, from the input
 * xt[PH][PW][n] (PH = 4 th + 2, PW = 4 tw + 2, zero-padded by the caller). */
void KFN(kern_wino_in)(const float *xt, int PW, int th, int tw, int n, float *Vt, size_t xs)
{
    float h[6][6][CB], v[6][CB];
    const float *d[6];
    float (*o)[CB];
    for (int i = 0; i < th; i++)
        for (int j = 0; j < tw; j++)
            for (int c0 = 0; c0 < n; c0 += CB) {
                const int nb = n - c0 < CB ? n - c0 : CB;
                for (int r = 0; r < 6; r++) {
                    for (int s = 0; s < 6; s++)
                        d[s] = xt + ((size_t)(4 * i + r) * PW + 4 * j + s) * n + c0;
                    o = h[r];
                    IVDEP
                    for (int c = 0; c < nb; c++)
                        BT6(o, d, c);
                }
                float *dst = Vt + ((size_t)i * tw + j) * n + c0;
                for (int q = 0; q < 6; q++) {
                    for (int r = 0; r < 6; r++)
                        d[r] = h[r][q];
                    o = v;
                    IVDEP
                    for (int c = 0; c < nb; c++)
                        BT6(o, d, c);
                    for (int p = 0; p < 6; p++)
                        copy_floats(dst + (size_t)(p * 6 + q) * xs, v[p], nb);
                }
            }
}

/* Yt[oy][ox][c] = bias[c] + (A^T M A) of the tiles in Mt (as kern_wino_in lays V out),
 * for the outputs inside OH x OW. */
void KFN(kern_wino_out)(const float *Mt, size_t xs, int th, int tw, int n, const float *bias,
                        float *Yt, int OH, int OW)
{
    float r[4][6][CB], y[4][CB];
    const float *m[6];
    float (*o)[CB];
    for (int i = 0; i < th; i++)
        for (int j = 0; j < tw; j++)
            for (int c0 = 0; c0 < n; c0 += CB) {
                const int nb = n - c0 < CB ? n - c0 : CB;
                const float *src = Mt + ((size_t)i * tw + j) * n + c0;
                float col[4][CB];
                for (int q = 0; q < 6; q++) {
                    for (int p = 0; p < 6; p++)
                        m[p] = src + (size_t)(p * 6 + q) * xs;
                    o = col;
                    IVDEP
                    for (int c = 0; c < nb; c++)
                        AT6(o, m, c);
                    for (int p = 0; p < 4; p++)
                        copy_floats(r[p][q], col[p], nb);
                }
                for (int p = 0; p < 4 && 4 * i + p < OH; p++) {
                    for (int q = 0; q < 6; q++)
                        m[q] = r[p][q];
                    o = y;
                    IVDEP
                    for (int c = 0; c < nb; c++)
                        AT6(o, m, c);
                    for (int q = 0; q < 4 && 4 * j + q < OW; q++) {
                        float *out = Yt + ((size_t)(4 * i + p) * OW + 4 * j + q) * n + c0;
                        for (int c = 0; c < nb; c++)
                            out[c] = bias[c0 + c] + y[q][c];
                    }
                }
            }
}

/* dMt (laid out as kern_wino_in's Vt) = A dY A^T per tile, from dYt[OH][OW][n], zero
 * beyond it. */
void KFN(kern_wino_dout)(const float *dYt, int OH, int OW, int th, int tw, int n, float *dMt,
                         size_t xs)
{
    float h[4][6][CB], e[6][CB];
    const float *y[6];
    float (*o)[CB];
    for (int i = 0; i < th; i++)
        for (int j = 0; j < tw; j++)
            for (int c0 = 0; c0 < n; c0 += CB) {
                const int nb = n - c0 < CB ? n - c0 : CB;
                for (int p = 0; p < 4; p++) {
                    const int oy = 4 * i + p;
                    for (int q = 0; q < 4; q++) {
                        const int ox = 4 * j + q;
                        y[q] = oy < OH && ox < OW ? dYt + ((size_t)oy * OW + ox) * n + c0
                                                  : zeros;
                    }
                    o = h[p];
                    IVDEP
                    for (int c = 0; c < nb; c++)
                        A4(o, y, c);
                }
                float *dst = dMt + ((size_t)i * tw + j) * n + c0;
                for (int q = 0; q < 6; q++) {
                    for (int p = 0; p < 4; p++)
                        y[p] = h[p][q];
                    o = e;
                    IVDEP
                    for (int c = 0; c < nb; c++)
                        A4(o, y, c);
                    for (int p = 0; p < 6; p++)
                        copy_floats(dst + (size_t)(p * 6 + q) * xs, e[p], nb);
                }
            }
}

/* dXt[PH][PW][n] += B dV B^T of each tile in dVt (laid out as kern_wino_in's Vt), tile
 * after tile in order. */
void KFN(kern_wino_din)(const float *dVt, size_t xs, int th, int tw, int n, float *dXt, int PW)
{
    float e[6][6][CB], dd[6][CB];
    const float *v[6];
    float (*o)[CB];
    for (int i = 0; i < th; i++)
        for (int j = 0; j < tw; j++)
            for (int c0 = 0; c0 < n; c0 += CB) {
                const int nb = n - c0 < CB ? n - c0 : CB;
                const float *src = dVt + ((size_t)i * tw + j) * n + c0;
                float col[6][CB];
                for (int q = 0; q < 6; q++) {
                    for (int p = 0; p < 6; p++)
                        v[p] = src + (size_t)(p * 6 + q) * xs;
                    o = col;
                    IVDEP
                    for (int c = 0; c < nb; c++)
                        B6(o, v, c);
                    for (int r = 0; r < 6; r++)
                        copy_floats(e[r][q], col[r], nb);
                }
                for (int r = 0; r < 6; r++) {
                    for (int q = 0; q < 6; q++)
                        v[q] = e[r][q];
                    o = dd;
                    IVDEP
                    for (int c = 0; c < nb; c++)
                        B6(o, v, c);
                    float *row = dXt + ((size_t)(4 * i + r) * PW + 4 * j) * n + c0;
                    for (int s = 0; s < 6; s++)
                        for (int c = 0; c < nb; c++)
                            row[(size_t)s * n + c] += dd[s][c];
                }
            }
}

/* dweight[k][c][3][3] += (G^T dU[.][k][c] G) for channels c0..c1-1 of every output k, from
 * dU [36][OC][C]: t[p][v] = sum over q of dU[p*6 + q] G[q][v], then x[u][v] = sum over p
 * of G[p][u] t[p][v], each a sum from zero in that order of products rounded apart (as the
 * C expressions it was first written as), a vector of channels at a time. */
void KFN(kern_wino_wgrad)(const float *dU, int OC, int C, int c0, int c1, float *dweight)
{
    for (int k = 0; k < OC; k++)
        for (int b0 = c0; b0 < c1; b0 += VW) {
            const int nb = c1 - b0 < VW ? c1 - b0 : VW;
            const vmask m = vm_first(nb);
            vf t[6][3];
            for (int p = 0; p < 6; p++) {
                vf d[6];
                for (int q = 0; q < 6; q++)
                    d[q] = vf_load_m(dU + ((size_t)(p * 6 + q) * OC + k) * C + b0, m);
                for (int v = 0; v < 3; v++) {
                    vf acc = vf_zero();
                    for (int q = 0; q < 6; q++)
                        acc = vf_add(acc, vf_mul(d[q], vf_set1(wino_G[q][v])));
                    t[p][v] = acc;
                }
            }
            float x[9][VW];
            for (int u = 0; u < 3; u++)
                for (int v = 0; v < 3; v++) {
                    vf acc = vf_zero();
                    for (int p = 0; p < 6; p++)
                        acc = vf_add(acc, vf_mul(vf_set1(wino_G[p][u]), t[p][v]));
                    vf_store(x[u * 3 + v], acc);
                }
            float *dw = dweight + ((size_t)k * C + b0) * 9;
            for (int c = 0; c < nb; c++)
                for (int j = 0; j < 9; j++)
                    dw[c * 9 + j] += x[j][c];
        }
}

/* x[i] = (a0 y0[i] + a1 y1[i]) + a2 y2[i] for i < n, as C evaluates it (no fused step). */
ALWAYS_INLINE void lin3(float *x, const float *y0, const float *y1, const float *y2, float a0,
                        float a1, float a2, size_t n)
{
    const vf c0 = vf_set1(a0), c1 = vf_set1(a1), c2 = vf_set1(a2);
    size_t i = 0;
    for (; i + VW <= n; i += VW)
        vf_store(x + i, vf_add(vf_add(vf_mul(c0, vf_load(y0 + i)), vf_mul(c1, vf_load(y1 + i))),
                               vf_mul(c2, vf_load(y2 + i))));
    for (; i < n; i++)
        x[i] = a0 * y0[i] + a1 * y1[i] + a2 * y2[i];
}

/* The filters' transform U = G g G^T, each value the sequence of the C expressions it
 * replaces (conv_winograd.c before 2026-12-07): t[p][v] = (G[p][0] g[0][v] + G[p][1]
 * g[1][v]) + G[p][2] g[2][v], then U[p][q] = (t[p][0] G[q][0] + t[p][1] G[q][1]) +
 * t[p][2] G[q][2] (a product's operands commute exactly), every multiplication by G's
 * zeros included (a zero times an infinite weight is a NaN, as before). All n filters at
 * once, along the vectors: g holds their 9 taps' planes (g[j][f], tap j = 3i + v), and
 * each row p of t and the six positions it makes are written in one pass (a filter at a
 * time, the 36 positions 8 KiB apart fell into one set of the cache). t: 3 n floats. */
void KFN(kern_wino_filter)(const float *g, size_t n, float *U, float *t)
{
    for (int p = 0; p < 6; p++) {
        for (int v = 0; v < 3; v++)
            lin3(t + v * n, g + v * n, g + (3 + v) * n, g + (6 + v) * n, wino_G[p][0],
                 wino_G[p][1], wino_G[p][2], n);
        for (int q = 0; q < 6; q++)
            lin3(U + (size_t)(p * 6 + q) * n, t, t + n, t + 2 * n, wino_G[q][0], wino_G[q][1],
                 wino_G[q][2], n);
    }
}
