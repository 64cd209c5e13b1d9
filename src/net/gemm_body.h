/* gemm_body: the register-blocked product C = start + A*B of kern_gemm.c, written once for
 * any element type. Included by a kernel source after simd.h and these definitions:
 *   G_ELT           the element of A and B (float; or a pair of bf16 in a uint32_t)
 *   G_VB            a vector of VW elements of B, or one element of A broadcast
 *   G_LOAD(p), G_LOAD_M(p, m), G_SET1(x)   loads (masked: zero outside m), broadcast
 *   G_MADD(a, b, c) c + a*b for one element of the inner dimension: one vf of sums
 *   G_NAME          the function's name
 * and TR, TV (the tile: TR rows of C by TV vectors). Each element of C is one chain of
 * G_MADD in k order, started from 0, from C itself or from a bias; which tile an element
 * falls in, how wide the vectors are and where K is sliced change nothing in that chain,
 * so every path and every split of rows across threads gives the same bits. */
#define TN (TV * VW) /* columns per block */

/* An R x V-vector tile of C over the whole of K. `masked`: the last vector holds only
 * `last` (1..VW) columns; constant at every call site, so the k loop has no branch. */
ALWAYS_INLINE void tile(int R, int V, int masked, int last, int K, const G_ELT *restrict A,
                        size_t ars, size_t aks, const G_ELT *restrict B, size_t ldb,
                        float *restrict C, size_t ldc, int start, const float *bias)
{
    const vmask m = vm_first(masked ? last : VW);
    vf c[TR][TV];
    for (int r = 0; r < R; r++)
        for (int v = 0; v < V; v++) {
            float *at = C + (size_t)r * ldc + (size_t)v * VW;
            if (start == GEMM_ZERO)
                c[r][v] = vf_zero();
            else if (start == GEMM_BIAS)
                c[r][v] = vf_set1(bias[r]);
            else
                c[r][v] = masked && v == V - 1 ? vf_load_m(at, m) : vf_load(at);
        }
    for (int k = 0; k < K; k++) {
        const G_ELT *b = B + (size_t)k * ldb;
        G_VB bv[TV];
        for (int v = 0; v < V; v++)
            bv[v] = masked && v == V - 1 ? G_LOAD_M(b + v * VW, m) : G_LOAD(b + v * VW);
        const G_ELT *a = A + (size_t)k * aks;
        for (int r = 0; r < R; r++) {
            G_VB x = G_SET1(a[(size_t)r * ars]);
            for (int v = 0; v < V; v++)
                c[r][v] = G_MADD(x, bv[v], c[r][v]);
        }
    }
    for (int r = 0; r < R; r++)
        for (int v = 0; v < V; v++) {
            float *at = C + (size_t)r * ldc + (size_t)v * VW;
            if (masked && v == V - 1)
                vf_store_m(at, m, c[r][v]);
            else
                vf_store(at, c[r][v]);
        }
}

/* All rows of one column block of V vectors, TR rows at a time. */
ALWAYS_INLINE void column_block(int M, int V, int masked, int last, int K, const G_ELT *A,
                                size_t ars, size_t aks, const G_ELT *B, size_t ldb, float *C,
                                size_t ldc, int start, const float *bias)
{
    int i = 0;
#define ROWS(R) tile(R, V, masked, last, K, A + (size_t)i * ars, ars, aks, B, ldb, \
                     C + (size_t)i * ldc, ldc, start, bias ? bias + i : NULL)
    for (; i + TR <= M; i += TR)
        ROWS(TR);
    switch (M - i) {
#if TR > 14
#error "add cases for the larger tile"
#endif
#if TR > 13
    case 13: ROWS(13); break;
#endif
#if TR > 12
    case 12: ROWS(12); break;
#endif
#if TR > 11
    case 11: ROWS(11); break;
#endif
#if TR > 10
    case 10: ROWS(10); break;
#endif
#if TR > 9
    case 9: ROWS(9); break;
#endif
#if TR > 8
    case 8: ROWS(8); break;
#endif
#if TR > 7
    case 7: ROWS(7); break;
#endif
#if TR > 6
    case 6: ROWS(6); break;
#endif
#if TR > 5
    case 5: ROWS(5); break;
#endif
#if TR > 4
    case 4: ROWS(4); break;
#endif
    case 3: ROWS(3); break;
    case 2: ROWS(2); break;
    case 1: ROWS(1); break;
    }
#undef ROWS
}

/* A block of 1..TN columns that is not full: V vectors, the last one masked. */
static void column_tail(int M, int width, int K, const G_ELT *A, size_t ars, size_t aks,
                        const G_ELT *B, size_t ldb, float *C, size_t ldc, int start,
                        const float *bias)
{
    const int V = (width + VW - 1) / VW, last = width - VW * (V - 1);
    switch (V) {
#define TAIL(NV) case NV: column_block(M, NV, 1, last, K, A, ars, aks, B, ldb, C, ldc, start, bias); break
        TAIL(1);
#if TV > 1
        TAIL(2);
#endif
#if TV > 2
        TAIL(3);
#endif
#if TV > 3
        TAIL(4);
#endif
#if TV > 4
#error "add cases for the wider tile"
#endif
#undef TAIL
    }
}

/* Rows of B whose stride is a multiple of 4 KiB (fc1 of nopool: 36864 floats) all fall
 * into the same cache sets; with enough row tiles to reuse it, the K x TN panel of B is
 * first copied to a contiguous buffer. */
#define PACK_MAX_K 384
#define PACK_MIN_LDB 1024

static void panel(int M, int N, int K, const G_ELT *restrict A, size_t ars, size_t aks,
                  const G_ELT *restrict B, size_t ldb, float *restrict C, size_t ldc, int start,
                  const float *bias)
{
    G_ELT pack[PACK_MAX_K * TN] __attribute__((aligned(64)));
    const int packed = M > 2 * TR && K <= PACK_MAX_K && ldb >= PACK_MIN_LDB;
    for (int j = 0; j < N; j += TN) {
        const int width = N - j < TN ? N - j : TN;
        const G_ELT *b = B + j;
        size_t ld = ldb;
        if (packed) {
            /* the next block's lines fetched while this one is multiplied: each of B's
             * rows is a stream of its own, too many for the hardware to follow */
            const G_ELT *next = j + TN < N ? B + j + TN : NULL;
            for (int k = 0; k < K; k++) {
                for (size_t c = 0; next && c < sizeof(G_ELT) * TN; c += 64)
                    __builtin_prefetch((const char *)(next + (size_t)k * ldb) + c, 0, 3);
                /* (a size known when compiling: vector moves, not `rep movsq`, whose
                 * start-up was 7% of this function's time on Zen 5) */
                if (width == TN) {
                    memcpy(pack + (size_t)TN * k, B + (size_t)k * ldb + j, sizeof(G_ELT) * TN);
                    continue;
                }
                memcpy(pack + (size_t)TN * k, B + (size_t)k * ldb + j, sizeof(G_ELT) * width);
                memset(pack + (size_t)TN * k + width, 0, sizeof(G_ELT) * (TN - width));
            }
            b = pack;
            ld = TN;
        }
        if (width == TN)
            column_block(M, TV, 0, VW, K, A, ars, aks, b, ld, C + j, ldc, start, bias);
        else
            column_tail(M, width, K, A, ars, aks, b, ld, C + j, ldc, start, bias);
    }
}

/* Long inner dimensions go in slices of KC, so that a panel of B stays in cache across
 * the row tiles. Each C element continues its chain from one slice to the next (stored
 * and reloaded in between), so the bits do not change. */
#ifndef KC
#define KC 256
#endif

void G_NAME(int M, int N, int K, const G_ELT *A, size_t ars, size_t aks, const G_ELT *B,
            int ldb, float *C, int ldc, int start, const float *bias)
{
    if (M <= 0 || N <= 0)
        return;
    if (K <= 0) { /* an empty chain: the start value itself */
        if (start != GEMM_ACC)
            for (int i = 0; i < M; i++)
                for (int j = 0; j < N; j++)
                    C[(size_t)i * ldc + j] = start == GEMM_BIAS ? bias[i] : 0.0f;
        return;
    }
    if (K <= KC + KC / 2) {
        panel(M, N, K, A, ars, aks, B, (size_t)ldb, C, (size_t)ldc, start, bias);
        return;
    }
    for (int k0 = 0; k0 < K; k0 += KC) {
        int kw = K - k0 < KC + KC / 2 ? K - k0 : KC;
        panel(M, N, kw, A + (size_t)k0 * aks, ars, aks, B + (size_t)k0 * ldb, (size_t)ldb, C,
              (size_t)ldc, k0 > 0 ? GEMM_ACC : start, bias);
        if (kw != KC)
            break;
    }
}
