/* kern_direct: the forward pass of a convolution with few columns (C*KH*KW small: MNIST's
 * conv1 has 9), stride 1 and no padding, straight from the image, for one instruction set;
 * and, below, such a convolution's weight gradient through relu and 2x2 max pooling.
 *
 * Through im2col, such a layer is a product with an inner dimension of 9: the im2col
 * matrix is written and read once for 9 fused multiply-adds per output, and the product's
 * tiles spend most of their time starting and storing chains. Here each output element
 * is the same chain as in gemm_nn_bias on the im2col matrix (the bias, then one fused
 * multiply-add per column in (c, i, j) order), computed for a row of output pixels at a
 * time with the input row loaded in place of the im2col row, and a block of output
 * channels sharing each load. Same chains, so the same bits as the im2col path. */
#include <stdint.h>

#include "simd.h"

/* Output channels per block: accumulators held in registers across the whole chain (with
 * the input vector and a broadcast weight: 18 of the 32 zmm registers, 10 of 16 ymm). */
#if VW == 16
#define OB 16
#else
#define OB 8
#endif

/* Channels [oc0, oc0 + nb) of output row oy, pixels [ox, ox + n), n <= VW; wt holds the
 * block's weights column by column, wt[k*OB + b], zero for b >= nb (one base pointer for
 * every broadcast; the OB accumulators stay in registers, those past nb never stored). */
ALWAYS_INLINE void direct_block(int nb, const float *in, int C, int H, int W, int KH, int KW,
                                int OH, int OW, const float *wt, const float *bias, int oc0,
                                int oy, int ox, int n, float *out)
{
    const vmask m = vm_first(n);
    vf acc[OB];
    for (int b = 0; b < OB; b++)
        acc[b] = vf_set1(b < nb ? bias[oc0 + b] : 0.0f);
    for (int c = 0; c < C; c++)
        for (int i = 0; i < KH; i++) {
            const float *row = in + ((size_t)c * H + oy + i) * W + ox;
            for (int j = 0; j < KW; j++, wt += OB) {
                /* masked at the row's end: the lanes past it may lie past the image */
                const vf x = n == VW ? vf_load(row + j) : vf_load_m(row + j, m);
                for (int b = 0; b < OB; b++)
                    acc[b] = vf_fma(vf_set1(wt[b]), x, acc[b]);
            }
        }
    const size_t P = (size_t)OH * OW;
    float *dst = out + (size_t)oc0 * P + (size_t)oy * OW + ox;
    for (int b = 0; b < OB; b++) { /* a constant bound: acc stays in registers */
        if (b >= nb)
            break;
        if (n == VW)
            vf_store(dst + b * P, acc[b]);
        else
            vf_store_m(dst + b * P, m, acc[b]);
    }
}

/* out[oc][oy*OW + ox] = bias[oc] + sum over (c, i, j), in that order, of
 * weight[oc][(c*KH + i)*KW + j] * in[c][oy + i][ox + j], one sample, OH = H - KH + 1,
 * OW = W - KW + 1, C*KH*KW <= DP_DIRECT_MAX_K. The last block of an OC that is not a
 * multiple of OB computes its missing channels on zero weights and drops them. */
void KFN(kern_conv_direct)(const float *in, int C, int H, int W, int KH, int KW, int OC,
                           const float *weight, const float *bias, float *out)
{
    const int OH = H - KH + 1, OW = W - KW + 1, K = C * KH * KW;
    float wt[(DP_DIRECT_MAX_K) * OB];
    for (int oc0 = 0; oc0 < OC; oc0 += OB) {
        const int nb = OC - oc0 < OB ? OC - oc0 : OB;
        for (int k = 0; k < K; k++)
            for (int b = 0; b < OB; b++)
                wt[k * OB + b] = b < nb ? weight[(size_t)(oc0 + b) * K + k] : 0.0f;
        for (int oy = 0; oy < OH; oy++)
            for (int ox = 0; ox < OW; ox += VW)
                direct_block(nb, in, C, H, W, KH, KW, OH, OW, wt, bias, oc0, oy, ox,
                             OW - ox < VW ? OW - ox : VW, out);
    }
}

/* The weight gradient of such a convolution of one input channel, 3x3, followed by relu
 * and 2x2 max pooling of stride 2 (conv_pooled.c), straight from the pooled
 * output's gradient: of the four conv outputs of a window only its argmax receives a
 * gradient, so each window adds one term to each weight's chain, not four (of which three
 * were zeros), and nothing is unpooled. */

/* One channel's plane: g = the pooled gradient where the relu passes (pooled > 0 or NaN,
 * as unpooling reads it), else 0; code = where the window's argmax lies, as the offset of
 * its 3x3 input patch in the window's 4x4 one (4 wide): 4 dy + dx, as a float, for an
 * argmax in its window, as the forward's pooling leaves it. OW: the conv output's width,
 * which the argmax indexes. */
void KFN(kern_pool_codes)(float *restrict g, float *restrict code, const float *restrict dP,
                          const float *restrict pooled, const int32_t *restrict argmax, int POH,
                          int POW, int OW)
{
    for (int oy = 0; oy < POH; oy++) {
        const int q0 = oy * POW;
        int ox = 0;
#if VW == 16
        /* lanes of 2 ox, the window's first input; rel >= OW: a window's second row */
        const __m512i two = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24,
                                              26, 28, 30);
        for (; ox < POW; ox += 16) {
            const __mmask16 m = (__mmask16)((1u << (POW - ox < 16 ? POW - ox : 16)) - 1u);
            const __mmask16 pass = _mm512_cmp_ps_mask(_mm512_maskz_loadu_ps(m, pooled + q0 + ox),
                                                      _mm512_setzero_ps(), _CMP_NLE_UQ);
            const __m512i rel = _mm512_sub_epi32(
                _mm512_maskz_loadu_epi32(m, argmax + q0 + ox),
                _mm512_add_epi32(_mm512_set1_epi32(2 * (oy * OW + ox)), two));
            const __mmask16 low = _mm512_cmpge_epi32_mask(rel, _mm512_set1_epi32(OW));
            _mm512_mask_storeu_ps(g + q0 + ox, m,
                                  _mm512_maskz_loadu_ps(pass & m, dP + q0 + ox));
            _mm512_mask_storeu_ps(code + q0 + ox, m,
                                  _mm512_cvtepi32_ps(_mm512_mask_add_epi32(
                                      rel, low, rel, _mm512_set1_epi32(4 - OW))));
        }
#elif VW == 8
        const __m256i two = _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14);
        for (; ox + 8 <= POW; ox += 8) {
            const __m256 pass = _mm256_cmp_ps(_mm256_loadu_ps(pooled + q0 + ox),
                                              _mm256_setzero_ps(), _CMP_NLE_UQ);
            const __m256i rel = _mm256_sub_epi32(
                _mm256_loadu_si256((const __m256i *)(argmax + q0 + ox)),
                _mm256_add_epi32(_mm256_set1_epi32(2 * (oy * OW + ox)), two));
            const __m256i low = _mm256_cmpgt_epi32(rel, _mm256_set1_epi32(OW - 1));
            _mm256_storeu_ps(g + q0 + ox, _mm256_and_ps(pass, _mm256_loadu_ps(dP + q0 + ox)));
            _mm256_storeu_ps(code + q0 + ox,
                             _mm256_cvtepi32_ps(_mm256_add_epi32(
                                 rel, _mm256_and_si256(low, _mm256_set1_epi32(4 - OW)))));
        }
#endif
        for (; ox < POW; ox++) {
            const int rel = argmax[q0 + ox] - 2 * (oy * OW + ox);
            g[q0 + ox] = pooled[q0 + ox] <= 0.0f ? 0.0f : dP[q0 + ox];
            code[q0 + ox] = (float)(rel >= OW ? rel - OW + 4 : rel);
        }
    }
}

#if VW == 16
typedef __m512 patch_t; /* the window's 4x4 input patch, row by row */
typedef __m512i code_t;
ALWAYS_INLINE patch_t patch_load(const float *r, int W)
{
    const __m512 lo = _mm512_castps256_ps512(
        _mm256_insertf128_ps(_mm256_castps128_ps256(_mm_loadu_ps(r)), _mm_loadu_ps(r + W), 1));
    return _mm512_insertf32x8(lo,
                              _mm256_insertf128_ps(_mm256_castps128_ps256(_mm_loadu_ps(r + 2 * W)),
                                                   _mm_loadu_ps(r + 3 * W), 1),
                              1);
}
ALWAYS_INLINE code_t code_load(const float *c, vmask m)
{
    return _mm512_cvttps_epi32(_mm512_maskz_loadu_ps(m, c));
}
/* each lane's value at patch[code + k] */
ALWAYS_INLINE vf patch_pick(patch_t p, code_t c, int k)
{
    return _mm512_permutexvar_ps(_mm512_add_epi32(c, _mm512_set1_epi32(k)), p);
}
#elif VW == 8
typedef struct {
    __m256 lo, hi;
} patch_t;
typedef __m256i code_t;
ALWAYS_INLINE patch_t patch_load(const float *r, int W)
{
    patch_t p = {_mm256_set_m128(_mm_loadu_ps(r + W), _mm_loadu_ps(r)),
                 _mm256_set_m128(_mm_loadu_ps(r + 3 * W), _mm_loadu_ps(r + 2 * W))};
    return p;
}
ALWAYS_INLINE code_t code_load(const float *c, vmask m)
{
    return _mm256_cvttps_epi32(_mm256_maskload_ps(c, m));
}
ALWAYS_INLINE vf patch_pick(patch_t p, code_t c, int k)
{
    const __m256i i = _mm256_add_epi32(c, _mm256_set1_epi32(k));
    return _mm256_blendv_ps(_mm256_permutevar8x32_ps(p.lo, i), _mm256_permutevar8x32_ps(p.hi, i),
                            _mm256_castsi256_ps(_mm256_cmpgt_epi32(i, _mm256_set1_epi32(7))));
}
#else
typedef struct {
    float v[16];
} patch_t;
typedef int code_t;
ALWAYS_INLINE patch_t patch_load(const float *r, int W)
{
    patch_t p;
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++)
            p.v[4 * i + j] = r[i * W + j];
    return p;
}
ALWAYS_INLINE code_t code_load(const float *c, vmask m) { return m ? (int)*c : 0; }
ALWAYS_INLINE vf patch_pick(patch_t p, code_t c, int k) { return p.v[(c + k) & 15]; }
#endif

/* Channels o < n of one sample: for each window q = (oy, ox) in order, dwT[3i + j][o] =
 * fma(gT[q][o], x[2 oy + dy + i][2 ox + dx + j], dwT[3i + j][o]), (dy, dx) from cT[q][o],
 * and db[o] += gT[q][o]: chains that go on from the values there, one term per window.
 * gT and cT: [POH POW][n] (kern_pool_codes' planes transposed); dwT rows ld apart; x: the
 * sample's input, rows W apart, at least 2 POH + 2 rows and 2 POW + 2 columns. */
void KFN(kern_pool_wgrad3)(float *dwT, size_t ld, float *db, const float *x, int W,
                           const float *gT, const float *cT, int n, int POH, int POW)
{
    for (int o0 = 0; o0 < n; o0 += VW) {
        const int nb = n - o0 < VW ? n - o0 : VW;
        const vmask m = vm_first(nb);
        vf acc[9], accb = vf_load_m(db + o0, m);
        for (int k = 0; k < 9; k++)
            acc[k] = vf_load_m(dwT + k * ld + o0, m);
        for (int oy = 0; oy < POH; oy++)
            for (int ox = 0; ox < POW; ox++) {
                const size_t q = (size_t)(oy * POW + ox) * n + o0;
                const patch_t p = patch_load(x + (size_t)2 * oy * W + 2 * ox, W);
                const vf g = vf_load_m(gT + q, m);
                const code_t c = code_load(cT + q, m);
                accb = vf_add(accb, g);
                for (int i = 0; i < 3; i++)
                    for (int j = 0; j < 3; j++)
                        acc[3 * i + j] = vf_fma(g, patch_pick(p, c, 4 * i + j), acc[3 * i + j]);
            }
        vf_store_m(db + o0, m, accb);
        for (int k = 0; k < 9; k++)
            vf_store_m(dwT + k * ld + o0, m, acc[k]);
    }
}
