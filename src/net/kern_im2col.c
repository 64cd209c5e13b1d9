/* kern_im2col: moving convolution data between image and matrix layouts, for one
 * instruction set: im2col, its adjoints (col2im, row2im) and a transpose. No arithmetic
 * but additions, each into one element in a fixed order, so every path gives the same
 * bits as long as it keeps that order (the loops below do). */
#include <string.h>

#include "simd.h"

/* Segments of one row of a stride-1, unpadded im2col matrix: OH pieces of OW floats, piece
 * oy from src + oy*W. Stores are full vectors (a masked store costs several times more)
 * as long as they end before `end`: a full store runs past its piece into the next ones,
 * which are written afterwards. */
static inline void gather_row(float *restrict dst, const float *restrict src, int OH, int OW,
                              int W, const float *end)
{
#if VW > 1
    const int tail = OW % VW;
    const vmask m = vm_first(tail ? tail : VW);
    for (int oy = 0; oy < OH; oy++, dst += OW, src += W) {
        int x = 0;
        for (; x + VW <= OW; x += VW)
            vf_store(dst + x, vf_load(src + x));
        if (x == OW)
            continue;
        vf v = vf_load_m(src + x, m);
        if (dst + x + VW > end)
            vf_store_m(dst + x, m, v);
        else
            vf_store(dst + x, v);
    }
#else
    (void)end;
    for (int oy = 0; oy < OH; oy++, dst += OW, src += W)
        for (int x = 0; x < OW; x++)
            dst[x] = src[x];
#endif
}

#if VW == 16
/* Rows r0..r1-1 of a stride-1, unpadded im2col matrix by whole vectors of output. The 16
 * pixels p0..p0+15 of a row are OW-wide pieces W apart in the input: a window of at most
 * 32 consecutive floats (3x3 kernels: 16 + 2 per row change), which one two-source
 * permutation brings together; the permutation depends on p0 only, so it is made once per
 * shape (windows_make) and serves every row. About one store per 16 floats where the
 * piece by piece copy takes 11 pieces of 11 (reference conv2) with a masked load and an
 * unaligned store each. Reads nothing past the sample's C*H*W inputs. Returns 0, having
 * written nothing, when some window is wider than 32 floats or a row longer than
 * WINDOW_MAX_VECTORS vectors. */
#define WINDOW_MAX_VECTORS 64

/* The permutation of each vector of output for the shape (OH, OW, W) last seen by this
 * thread, made once per shape (its divisions cost as much as the copies of a small
 * sample's rows): ok 0 when some window is wider than 32 floats. */
static _Thread_local struct {
    int OH, OW, W, ok;
    int start[WINDOW_MAX_VECTORS];
    int32_t at[WINDOW_MAX_VECTORS][16] __attribute__((aligned(64)));
} windows;

static int windows_make(int OH, int OW, int W)
{
    if (windows.OH == OH && windows.OW == OW && windows.W == W)
        return windows.ok;
    const int P = OH * OW, gap = W - OW, nv = (P + 15) / 16;
    windows.OH = OH, windows.OW = OW, windows.W = W, windows.ok = 0;
    for (int q = 0; q < nv; q++) {
        const int p0 = 16 * q, n = P - p0 < 16 ? P - p0 : 16;
        windows.start[q] = p0 + gap * (p0 / OW);
        for (int l = 0; l < 16; l++) { /* lanes past the row's end repeat its first pixel */
            const int p = p0 + (l < n ? l : 0);
            windows.at[q][l] = p + gap * (p / OW) - windows.start[q];
            if (windows.at[q][l] >= 32)
                return 0;
        }
    }
    return windows.ok = 1;
}

static int im2col_windows(const float *restrict in, int r0, int r1, int C, int H, int W,
                          int KH, int KW, int OH, int OW, float *restrict col, size_t ldc)
{
    const int P = OH * OW, nv = (P + 15) / 16;
    if (nv > WINDOW_MAX_VECTORS || !windows_make(OH, OW, W))
        return 0;
    const int *start = windows.start;
    int32_t(*at)[16] = windows.at;
    /* a full last store stays inside the row's ldc floats, or it would reach the next row,
     * already written: then masked */
    const __mmask16 last = (size_t)nv * 16 <= ldc ? (__mmask16)0xFFFF : vm_first(P - 16 * (nv - 1));
    const size_t in_floats = (size_t)C * H * W;
    for (int r = r0; r < r1; r++) {
        const int c = r / (KH * KW), i = r / KW % KH, j = r % KW;
        const size_t base = ((size_t)c * H + i) * W + j;
        float *dst = col + (size_t)(r - r0) * ldc;
        for (int q = 0; q < nv; q++) {
            const size_t from = base + start[q];
            __m512 lo, hi;
            if (from + 32 <= in_floats) {
                lo = _mm512_loadu_ps(in + from);
                hi = _mm512_loadu_ps(in + from + 16);
            } else { /* the sample's last inputs: the lanes past them are never selected */
                const size_t left = in_floats - from;
                lo = _mm512_maskz_loadu_ps(vm_first(left < 16 ? (int)left : 16), in + from);
                hi = _mm512_maskz_loadu_ps(vm_first(left > 16 ? (int)left - 16 : 0),
                                           in + from + 16);
            }
            const __m512 v = _mm512_permutex2var_ps(lo, _mm512_load_si512(at[q]), hi);
            if (q + 1 < nv)
                _mm512_storeu_ps(dst + 16 * q, v);
            else
                _mm512_mask_storeu_ps(dst + 16 * q, last, v);
        }
    }
    return 1;
}
#endif

/* Rows r0..r1-1 of the im2col matrix, row r = (c*KH + i)*KW + j at col + (r - r0)*ldc, in
 * a buffer of (r1 - r0)*ldc floats: the ldc - OH*OW floats after each row (room for full
 * stores, and rows that start on whole vectors for the product) are left undefined. */
void KFN(kern_im2col)(const float *restrict in, int r0, int r1, int C, int H, int W, int KH,
                      int KW, int stride, int pad, int OH, int OW, float *restrict col,
                      size_t ldc)
{
    (void)C; /* implied by r1 <= C*KH*KW (and used by the AVX-512 path) */
#if VW == 16
    if (stride == 1 && pad == 0 &&
        im2col_windows(in, r0, r1, C, H, W, KH, KW, OH, OW, col, ldc))
        return;
#endif
    for (int r = r0; r < r1; r++) {
        const int c = r / (KH * KW), i = r / KW % KH, j = r % KW;
        float *row = col + (size_t)(r - r0) * ldc;
        if (stride == 1 && pad == 0) {
            gather_row(row, in + ((size_t)c * H + i) * W + j, OH, OW, W,
                       col + (size_t)(r1 - r0) * ldc);
            continue;
        }
        for (int oy = 0; oy < OH; oy++) {
            int y = oy * stride - pad + i;
            float *out = row + (size_t)oy * OW;
            if (y < 0 || y >= H) {
                memset(out, 0, sizeof(float) * OW);
                continue;
            }
            const float *src = in + ((size_t)c * H + y) * W;
            for (int ox = 0; ox < OW; ox++) {
                int x = ox * stride - pad + j;
                out[ox] = (x >= 0 && x < W) ? src[x] : 0.0f;
            }
        }
    }
}

#if VW > 1
/* The 4x4 transpositions within each 128-bit lane of registers x[0..3] and of x[4..7],
 * left in x (y: scratch); for 256- and 512-bit registers alike. */
#define TRANSPOSE_4X4_IN_LANES(x, y, unpacklo, unpackhi, shuffle)                          \
    do {                                                                                   \
        for (int i_ = 0; i_ < 8; i_ += 2) {                                                \
            (y)[i_] = unpacklo((x)[i_], (x)[i_ + 1]);                                      \
            (y)[i_ + 1] = unpackhi((x)[i_], (x)[i_ + 1]);                                  \
        }                                                                                  \
        for (int i_ = 0; i_ < 8; i_ += 4) {                                                \
            (x)[i_] = shuffle((y)[i_], (y)[i_ + 2], 0x44);                                 \
            (x)[i_ + 1] = shuffle((y)[i_], (y)[i_ + 2], 0xEE);                             \
            (x)[i_ + 2] = shuffle((y)[i_ + 1], (y)[i_ + 3], 0x44);                         \
            (x)[i_ + 3] = shuffle((y)[i_ + 1], (y)[i_ + 3], 0xEE);                         \
        }                                                                                  \
    } while (0)

/* One 8x8 block: dst rows c..c+7 get src columns c..c+7 of rows r..r+7. */
static inline void transpose8x8(const float *src, size_t lds, float *dst, size_t ldd)
{
    __m256 v[8], t[8];
    for (int i = 0; i < 8; i++)
        v[i] = _mm256_loadu_ps(src + (size_t)i * lds);
    TRANSPOSE_4X4_IN_LANES(v, t, _mm256_unpacklo_ps, _mm256_unpackhi_ps, _mm256_shuffle_ps);
    for (int i = 0; i < 4; i++) {
        t[i] = _mm256_permute2f128_ps(v[i], v[i + 4], 0x20);
        t[i + 4] = _mm256_permute2f128_ps(v[i], v[i + 4], 0x31);
    }
    for (int i = 0; i < 8; i++)
        _mm256_storeu_ps(dst + (size_t)i * ldd, t[i]);
}
#endif

#if VW == 16
/* One 16x16 block, with half the shuffles per element of two 8x8 ones: each register is
 * loaded with two rows' 8 columns (rows r and r+4 of each group of 8), so after the 4x4
 * transpositions within 128-bit lanes one shuffle of 128-bit lanes puts rows 0-15 of a
 * column in order. */
static inline void transpose16x16(const float *src, size_t lds, float *dst, size_t ldd)
{
    __m512 v[16], t[16];
    for (int i = 0; i < 8; i++) {
        const size_t lo = (size_t)(i < 4 ? i : i + 4), hi = lo + 4;
        for (int h = 0; h < 2; h++)
            v[i + 8 * h] = _mm512_insertf32x8(
                _mm512_castps256_ps512(_mm256_loadu_ps(src + lo * lds + 8 * h)),
                _mm256_loadu_ps(src + hi * lds + 8 * h), 1);
    }
    for (int b = 0; b < 16; b += 8) {
        __m512 *x = v + b, *y = t + b;
        TRANSPOSE_4X4_IN_LANES(x, y, _mm512_unpacklo_ps, _mm512_unpackhi_ps, _mm512_shuffle_ps);
        for (int i = 0; i < 4; i++) {
            y[i] = _mm512_shuffle_f32x4(x[i], x[i + 4], 0x88);     /* column b + i */
            y[i + 4] = _mm512_shuffle_f32x4(x[i], x[i + 4], 0xDD); /* column b + 4 + i */
        }
    }
    for (int i = 0; i < 16; i++)
        _mm512_storeu_ps(dst + (size_t)i * ldd, t[i]);
}
#endif

void KFN(kern_transpose)(const float *restrict src, int rows, int cols, size_t lds,
                         float *restrict dst, size_t ldd)
{
    int r = 0;
#if VW == 16
    for (; r + 16 <= rows; r += 16) {
        int c = 0;
        for (; c + 16 <= cols; c += 16)
            transpose16x16(src + (size_t)r * lds + c, lds, dst + (size_t)c * ldd + r, ldd);
        for (; c + 8 <= cols; c += 8)
            for (int h = 0; h < 16; h += 8)
                transpose8x8(src + (size_t)(r + h) * lds + c, lds,
                             dst + (size_t)c * ldd + r + h, ldd);
        for (; c < cols; c++)
            for (int i = 0; i < 16; i++)
                dst[(size_t)c * ldd + r + i] = src[(size_t)(r + i) * lds + c];
    }
#endif
#if VW > 1
    for (; r + 8 <= rows; r += 8) {
        int c = 0;
        for (; c + 8 <= cols; c += 8)
            transpose8x8(src + (size_t)r * lds + c, lds, dst + (size_t)c * ldd + r, ldd);
        for (; c < cols; c++)
            for (int i = 0; i < 8; i++)
                dst[(size_t)c * ldd + r + i] = src[(size_t)(r + i) * lds + c];
    }
#endif
    for (; r < rows; r++)
        for (int c = 0; c < cols; c++)
            dst[(size_t)c * ldd + r] = src[(size_t)r * lds + c];
}

/* Each input element receives its terms in output-pixel order (p = oy*OW + ox rising);
 * row holds the rows of pixels p0..p1-1, so consecutive ranges continue that order. */
void KFN(kern_row2im_acc)(const float *restrict row, int p0, int p1, int C, int H, int W,
                          int KH, int KW, int stride, int pad, int OH, int OW,
                          float *restrict in)
{
    (void)OH;
    const int K = C * KH * KW;
    if (stride == 1 && pad == 0 && KH == 3 && KW == 3) { /* the common case, unrolled */
        for (int p = p0; p < p1; p++) {
            const float *r = row + (size_t)(p - p0) * K;
            float *base = in + (size_t)(p / OW) * W + p % OW;
            for (int c = 0; c < C; c++, r += 9) {
                float *d0 = base + (size_t)c * H * W, *d1 = d0 + W, *d2 = d1 + W;
                d0[0] += r[0], d0[1] += r[1], d0[2] += r[2];
                d1[0] += r[3], d1[1] += r[4], d1[2] += r[5];
                d2[0] += r[6], d2[1] += r[7], d2[2] += r[8];
            }
        }
        return;
    }
    for (int p = p0; p < p1; p++) {
        const int oy = p / OW, ox = p % OW;
        const float *r = row + (size_t)(p - p0) * K;
        for (int c = 0; c < C; c++)
            for (int i = 0; i < KH; i++) {
                int y = oy * stride - pad + i;
                if (y < 0 || y >= H)
                    continue;
                float *dst = in + ((size_t)c * H + y) * W + ox * stride - pad;
                const float *src = r + (c * KH + i) * KW;
                if (pad == 0) { /* the window lies inside */
                    for (int j = 0; j < KW; j++)
                        dst[j] += src[j];
                    continue;
                }
                for (int j = 0; j < KW; j++) {
                    int x = ox * stride - pad + j;
                    if (x >= 0 && x < W)
                        dst[j] += src[j];
                }
            }
    }
}

/* Each input element receives its terms in (c, i, j) order. */
void KFN(kern_col2im_acc)(const float *restrict col, int C, int H, int W, int KH, int KW,
                          int stride, int pad, int OH, int OW, float *restrict in)
{
    for (int c = 0; c < C; c++)
        for (int i = 0; i < KH; i++)
            for (int j = 0; j < KW; j++) {
                const float *row = col + ((size_t)(c * KH + i) * KW + j) * OH * OW;
                for (int oy = 0; oy < OH; oy++) {
                    int y = oy * stride - pad + i;
                    if (y < 0 || y >= H)
                        continue;
                    float *dst = in + ((size_t)c * H + y) * W;
                    const float *src = row + (size_t)oy * OW;
                    if (stride == 1 && pad == 0) { /* the whole row lies inside: vectorises */
                        float *d = dst + j;
                        for (int ox = 0; ox < OW; ox++)
                            d[ox] += src[ox];
                        continue;
                    }
                    for (int ox = 0; ox < OW; ox++) {
                        int x = ox * stride - pad + j;
                        if (x >= 0 && x < W)
                            dst[x] += src[ox];
                    }
                }
            }
}

#if VW > 1
/* Stride 1, no padding: each input row, a vector at a time, gets all its terms while it is
 * in a register, from zero: from output row oy = y - i for i descending, then j
 * descending. Loads are masked to the lanes a term reaches (addresses outside them are not
 * touched); stores to the row's lanes. Nothing of in is read: reading a row that the
 * previous row's store overlapped stalled each row until that store was done. */
static void col2im_rows_in_registers(const float *restrict col, int C, int H, int W, int KH,
                                     int KW, int OH, int OW, float *restrict in)
{
    enum { MAX_KW = 32 };
#if !VM_CHEAP
    const float *end = in + (size_t)C * H * W;
#endif
    for (int x0 = 0; x0 < W; x0 += VW) {
        const int width = W - x0 < VW ? W - x0 : VW;
        const vmask live = vm_first(width);
        /* lane l is x = x0 + l, output column x - j: the lanes each j reaches */
        vmask reach[MAX_KW];
        int any[MAX_KW];
        for (int j = 0; j < KW && j < MAX_KW; j++) {
            int lo = j - x0 > 0 ? j - x0 : 0, hi = j + OW - x0;
            hi = hi < width ? hi : width;
            any[j] = lo < hi;
            reach[j] = any[j] ? vm_range(lo, hi) : vm_first(0);
        }
        for (int c = 0; c < C; c++)
            for (int y = 0; y < H; y++) {
                float *dst = in + ((size_t)c * H + y) * W + x0;
                vf acc = vf_zero(); /* 0 + the first term: the sign of a zero as before */
                for (int i = KH - 1; i >= 0; i--) {
                    const int oy = y - i;
                    if (oy < 0 || oy >= OH)
                        continue;
                    const float *src = col + ((size_t)(c * KH + i) * KW * OH + oy) * OW + x0;
                    for (int j = KW - 1; j >= 0; j--)
                        if (any[j])
                            acc = vf_add_m(acc, reach[j],
                                           vf_load_m(src + (size_t)j * OH * OW - j, reach[j]));
                }
#if VM_CHEAP
                if (width == VW)
                    vf_store(dst, acc);
                else
                    vf_store_m(dst, live, acc);
#else /* past the row: what it holds (written already, or written after) */
                if (width == VW || dst + VW <= end)
                    vf_store(dst, width == VW ? acc : vf_blend_m(vf_load(dst), live, acc));
                else
                    vf_store_m(dst, live, acc);
#endif
            }
    }
}
#endif

/* in[c][y][x] = 0 + the terms col[(c*KH + i)*KW + j][oy*OW + ox] of that input element, in
 * output-pixel order, as row2im_acc adds them onto a zeroed in: that is (i, j) descending,
 * since a larger i means an earlier output row and, within one, a larger j an earlier
 * column. */
void KFN(kern_col2im_pixel_order)(const float *restrict col, int C, int H, int W, int KH,
                                  int KW, int stride, int pad, int OH, int OW,
                                  float *restrict in)
{
#if VW > 1
    if (stride == 1 && pad == 0 && KW <= 32) {
        col2im_rows_in_registers(col, C, H, W, KH, KW, OH, OW, in);
        return;
    }
#endif
    memset(in, 0, sizeof(float) * C * H * W);
    for (int c = 0; c < C; c++)
        for (int i = KH - 1; i >= 0; i--)
            for (int j = KW - 1; j >= 0; j--) {
                const float *row = col + ((size_t)(c * KH + i) * KW + j) * OH * OW;
                for (int oy = 0; oy < OH; oy++) {
                    int y = oy * stride - pad + i;
                    if (y < 0 || y >= H)
                        continue;
                    float *dst = in + ((size_t)c * H + y) * W;
                    const float *src = row + (size_t)oy * OW;
                    for (int ox = 0; ox < OW; ox++) {
                        int x = ox * stride - pad + j;
                        if (x >= 0 && x < W)
                            dst[x] += src[ox];
                    }
                }
            }
}
