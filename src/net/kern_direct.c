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

/* Channels [oc0, oc0 + NB) of output row oy, pixels [ox, ox + n), n <= VW; wt holds their
 * weights column by column, wt[k*OB + b] (one base pointer for every broadcast). NB is a
 * constant at every call site, so the accumulators stay in registers. */
ALWAYS_INLINE void direct_block(int NB, const float *in, int C, int H, int W, int KH, int KW,
                                int OH, int OW, const float *wt, const float *bias, int oc0,
                                int oy, int ox, int n, float *out)
{
    const vmask m = vm_first(n);
    vf acc[OB];
    for (int b = 0; b < NB; b++)
        acc[b] = vf_set1(bias[oc0 + b]);
    for (int c = 0; c < C; c++)
        for (int i = 0; i < KH; i++) {
            const float *row = in + ((size_t)c * H + oy + i) * W + ox;
            for (int j = 0; j < KW; j++, wt += OB) {
                /* masked at the row's end: the lanes past it may lie past the image */
                const vf x = n == VW ? vf_load(row + j) : vf_load_m(row + j, m);
                for (int b = 0; b < NB; b++)
                    acc[b] = vf_fma(vf_set1(wt[b]), x, acc[b]);
            }
        }
    const size_t P = (size_t)OH * OW;
    float *dst = out + (size_t)oc0 * P + (size_t)oy * OW + ox;
    for (int b = 0; b < NB; b++) {
        if (n == VW)
            vf_store(dst + b * P, acc[b]);
        else
            vf_store_m(dst + b * P, m, acc[b]);
    }
}

/* out[oc][oy*OW + ox] = bias[oc] + sum over (c, i, j), in that order, of
 * weight[oc][(c*KH + i)*KW + j] * in[c][oy + i][ox + j], one sample, OH = H - KH + 1,
 * OW = W - KW + 1, C*KH*KW <= DP_DIRECT_MAX_K. */
void KFN(kern_conv_direct)(const float *in, int C, int H, int W, int KH, int KW, int OC,
                           const float *weight, const float *bias, float *out)
{
    const int OH = H - KH + 1, OW = W - KW + 1, K = C * KH * KW;
    float wt[(DP_DIRECT_MAX_K) * OB];
    for (int oc0 = 0; oc0 < OC; oc0 += OB) {
        const int nb = OC - oc0 < OB ? OC - oc0 : OB;
        for (int k = 0; k < K; k++)
            for (int b = 0; b < nb; b++)
                wt[k * OB + b] = weight[(size_t)(oc0 + b) * K + k];
        for (int oy = 0; oy < OH; oy++)
            for (int ox = 0; ox < OW; ox += VW) {
                const int n = OW - ox < VW ? OW - ox : VW;
#define BLOCK(NB) direct_block(NB, in, C, H, W, KH, KW, OH, OW, wt, bias, oc0, oy, ox, n, out)
                if (nb == OB) {
                    BLOCK(OB);
                    continue;
                }
                switch (nb) { /* the last block of an OC that is not a multiple of OB */
                case 1: BLOCK(1); break;
                case 2: BLOCK(2); break;
                case 3: BLOCK(3); break;
                case 4: BLOCK(4); break;
                case 5: BLOCK(5); break;
                case 6: BLOCK(6); break;
                case 7: BLOCK(7); break;
#if OB == 16
                case 8: BLOCK(8); break;
                case 9: BLOCK(9); break;
                case 10: BLOCK(10); break;
                case 11: BLOCK(11); break;
                case 12: BLOCK(12); break;
                case 13: BLOCK(13); break;
                case 14: BLOCK(14); break;
                case 15: BLOCK(15); break;
#endif
                }
#undef BLOCK
            }
    }
}
