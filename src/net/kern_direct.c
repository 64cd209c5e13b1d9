/* kern_direct: the forward pass of a convolution with few columns (C*KH*KW small: MNIST's
 * conv1 has 9), stride 1 and no padding, straight from the image, for one instruction set.
 *
 * Through im2col, such a layer is a product with an inner dimension of 9: the im2col
 * matrix is written and read once for 9 fused multiply-adds per output, and the product's
 * tiles spend most of their time starting and storing chains. Here each output element
 * is the same chain as in gemm_nn_bias on the im2col matrix (the bias, then one fused
 * multiply-add per column in (c, i, j) order), computed for a row of output pixels at a
 * time with the input row loaded in place of the im2col row, and a block of output
 * channels sharing each load. Same chains, so the same bits as the im2col path. */
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
