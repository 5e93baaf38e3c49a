// Products with a pre-packed (or in-place) right operand (see adaptc_kernels.h).
//
// The last token-side product of a low-rank adapter, y += t·Bᵀ, has a small
// inner size (the rank) and a wide output: its cost is streaming y through
// memory, not arithmetic. OpenBLAS, and a kernel that packs op(B) on every
// call, spend a good part of that time re-arranging B. Here B was arranged
// once, in prepare, as panels of ADAPTC_PANEL_WIDTH columns, each stored
// [k][16] — the order the kernel reads it — so a call does nothing but the
// multiply-adds and one read-modify-write pass over C.
//
// Tiles of 8 rows × 2 panels: each panel load feeds 8 multiply-adds, each
// broadcast of an A value 2, and a whole panel set is re-read once per 8 rows
// (with 2 rows per step, as in thin_gemm.c, reading B cost more than
// streaming C). Measured on 96 products 64×1024 (2 threads): k = 8 0.95 ms
// against 1.30 ms for the packing kernel; k = 16 1.47 against 2.31 ms and
// k = 64 5.7 against 7.5 ms for OpenBLAS.
//
// The same kernels read an unpacked B in place through two strides (panel to
// panel, row to row): the other thin products of an adapter (x·Aᵀ, dt·A,
// dtᵀ·x, finishBackward's products with a tall gradient), where OpenBLAS
// re-arranges its operands on every call.
//
// Every output element is Σ_p A[i, p]·panel[p, j] summed in order p = 0…k−1
// from zero (in passes of IN_PLACE_ROWS for a tall B read in place, C holding
// the partial sums), then alpha·sum + beta·C, whatever tile holds it: results
// do not depend on how a caller splits the columns or rows between threads.
#include "adaptc_kernels.h"
#include "kernel_common.h"

#include <immintrin.h>

#define W ADAPTC_PANEL_WIDTH

static inline long min_long(long a, long b) { return a < b ? a : b; }

// MR rows × NB panels at row i, panel q: accumulators are a fixed-size array
// the compiler keeps in registers (MR·NB ≤ 16 zmm). A's layout is a
// compile-time choice (TRANS) and its row addresses are hoisted, so the inner
// loop is the loads, broadcasts and multiply-adds alone (with the layout
// tested inside it, address arithmetic outnumbered the FMAs 2 to 1).
#define AVX512_TILE(MR, NB, TRANS)                                                                           \
    __attribute__((target("avx512f"))) static void tile512_##MR##x##NB##_##TRANS(                           \
        long i, long q, long k, float alpha, const float *a, long lda, const float *panels, long ps, long ks, \
        float beta, float *c, long ldc) {                                                                    \
        __m512 acc[MR][NB];                                                                                  \
        for (int r = 0; r < MR; r++)                                                                         \
            for (int s = 0; s < NB; s++) acc[r][s] = _mm512_setzero_ps();                                    \
        const float *panel = panels + q * ps;                                                                \
        const float *rows[MR];                                                                               \
        for (int r = 0; r < MR; r++) rows[r] = TRANS ? a + i + r : a + (i + r) * lda;                        \
        for (long p = 0; p < k; p++) {                                                                       \
            __m512 v[NB];                                                                                    \
            for (int s = 0; s < NB; s++) v[s] = _mm512_loadu_ps(panel + s * ps + p * ks);                    \
            for (int r = 0; r < MR; r++) {                                                                   \
                __m512 x = _mm512_set1_ps(TRANS ? rows[r][p * lda] : rows[r][p]);                            \
                for (int s = 0; s < NB; s++) acc[r][s] = _mm512_fmadd_ps(x, v[s], acc[r][s]);                \
            }                                                                                                \
        }                                                                                                    \
        __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);                                        \
        for (int r = 0; r < MR; r++)                                                                         \
            for (int s = 0; s < NB; s++) {                                                                   \
                float *target = c + (i + r) * ldc + (q + s) * W;                                             \
                __m512 sum = _mm512_mul_ps(acc[r][s], va);                                                   \
                if (beta != 0.0f) sum = _mm512_fmadd_ps(vb, _mm512_loadu_ps(target), sum);                   \
                _mm512_storeu_ps(target, sum);                                                               \
            }                                                                                                \
    }

#define AVX512_TILES(TRANS) AVX512_TILE(8, 2, TRANS) AVX512_TILE(8, 1, TRANS) AVX512_TILE(1, 2, TRANS) AVX512_TILE(1, 1, TRANS)
AVX512_TILES(0)
AVX512_TILES(1)

#define AVX512_BODY(TRANS)                                                                                   \
    __attribute__((target("avx512f"))) static void panel_avx512_##TRANS(                                     \
        long m, long panels_n, long k, float alpha, const float *a, long lda, const float *panels, long ps,  \
        long ks, float beta, float *c, long ldc) {                                                           \
        long i = 0;                                                                                          \
        for (; i + 8 <= m; i += 8) {                                                                         \
            long q = 0;                                                                                      \
            for (; q + 2 <= panels_n; q += 2) tile512_8x2_##TRANS(i, q, k, alpha, a, lda, panels, ps, ks, beta, c, ldc); \
            if (q < panels_n) tile512_8x1_##TRANS(i, q, k, alpha, a, lda, panels, ps, ks, beta, c, ldc);             \
        }                                                                                                    \
        for (; i < m; i++) {                                                                                 \
            long q = 0;                                                                                      \
            for (; q + 2 <= panels_n; q += 2) tile512_1x2_##TRANS(i, q, k, alpha, a, lda, panels, ps, ks, beta, c, ldc); \
            if (q < panels_n) tile512_1x1_##TRANS(i, q, k, alpha, a, lda, panels, ps, ks, beta, c, ldc);             \
        }                                                                                                    \
    }
AVX512_BODY(0)
AVX512_BODY(1)

// AVX2: one row × one panel (two halves of 8) at a time, four rows per step.
__attribute__((target("avx2,fma")))
static void panel_avx2(bool trans_a, long m, long panels_n, long k, float alpha, const float *a, long lda,
                       const float *panels, long ps, long ks, float beta, float *c, long ldc) {
    __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
    for (long i = 0; i < m; i++) {
        for (long q = 0; q < panels_n; q++) {
            const float *panel = panels + q * ps;
            __m256 lo = _mm256_setzero_ps(), hi = _mm256_setzero_ps();
            for (long p = 0; p < k; p++) {
                __m256 x = _mm256_set1_ps(adaptc_element(a, lda, trans_a, i, p));
                lo = _mm256_fmadd_ps(x, _mm256_loadu_ps(panel + p * ks), lo);
                hi = _mm256_fmadd_ps(x, _mm256_loadu_ps(panel + p * ks + 8), hi);
            }
            float *target = c + i * ldc + q * W;
            lo = _mm256_mul_ps(lo, va);
            hi = _mm256_mul_ps(hi, va);
            if (beta != 0.0f) {
                lo = _mm256_fmadd_ps(vb, _mm256_loadu_ps(target), lo);
                hi = _mm256_fmadd_ps(vb, _mm256_loadu_ps(target + 8), hi);
            }
            _mm256_storeu_ps(target, lo);
            _mm256_storeu_ps(target + 8, hi);
        }
    }
}

// Any other machine: the same sums in plain C.
static void panel_scalar(bool trans_a, long m, long panels_n, long k, float alpha, const float *a, long lda,
                         const float *panels, long ps, long ks, float beta, float *c, long ldc) {
    for (long i = 0; i < m; i++) {
        for (long q = 0; q < panels_n; q++) {
            const float *panel = panels + q * ps;
            float sum[W] = {0};
            for (long p = 0; p < k; p++) {
                float x = adaptc_element(a, lda, trans_a, i, p);
                for (int j = 0; j < W; j++) sum[j] += x * panel[p * ks + j];
            }
            float *target = c + i * ldc + q * W;
            for (int j = 0; j < W; j++) target[j] = beta != 0.0f ? alpha * sum[j] + beta * target[j] : alpha * sum[j];
        }
    }
}

static void panel_any(bool trans_a, long m, long panels_n, long k, float alpha, const float *a, long lda,
                      const float *b, long ps, long ks, float beta, float *c, long ldc) {
    switch (adaptc_cpu_isa()) {
    case 2:
        if (trans_a) panel_avx512_1(m, panels_n, k, alpha, a, lda, b, ps, ks, beta, c, ldc);
        else panel_avx512_0(m, panels_n, k, alpha, a, lda, b, ps, ks, beta, c, ldc);
        break;
    case 1: panel_avx2(trans_a, m, panels_n, k, alpha, a, lda, b, ps, ks, beta, c, ldc); break;
    default: panel_scalar(trans_a, m, panels_n, k, alpha, a, lda, b, ps, ks, beta, c, ldc); break;
    }
}

// Rows of an unpacked B per pass. A tile reads its panels down all k rows of
// B; when those rows lie far apart (B read in place, a tall gradient or x),
// each is a stream of its own, and more than the hardware prefetcher follows
// turn the pass into a chain of cache misses (dtᵀ·x over 64 rows of x ran at
// a third of OpenBLAS's speed). In passes of this many rows, C takes partial
// sums in between, in the same order for any split of C between threads.
#define IN_PLACE_ROWS 16

void adaptc_panel_gemm(bool trans_a, long m, long n, long k, float alpha, const float *a, long lda,
                       const float *b, long panel_stride, long k_stride, float beta, float *c, long ldc) {
    if (m < 1 || n < W || k < 1) return;
    long panels_n = n / W;
    if (k_stride == W || k <= IN_PLACE_ROWS) {
        panel_any(trans_a, m, panels_n, k, alpha, a, lda, b, panel_stride, k_stride, beta, c, ldc);
        return;
    }
    for (long p0 = 0; p0 < k; p0 += IN_PLACE_ROWS)
        panel_any(trans_a, m, panels_n, min_long(IN_PLACE_ROWS, k - p0), alpha, a + (trans_a ? p0 * lda : p0), lda,
                  b + p0 * k_stride, panel_stride, k_stride, p0 == 0 ? beta : 1.0f, c, ldc);
}

// ---------------------------------------------------------------------------
// Backward's dt = dy·B reads the forward's packed copy of B ("dot", a sum
// over the panels): 1.5 ms against 1.8–2.2 ms for OpenBLAS's small-matrix
// kernel on 96 products 64×1024×8, one thread. (Accumulating dB in panel
// layout as well was tried: no faster than OpenBLAS, both bound by reading dy.)


// dot: two rows of A × 8 ranks per pass, each output a vector of partial sums
// over the panels, reduced across its 16 lanes at the end. A rank chunk
// shorter than 8 re-reads its last rank (those sums are discarded).
__attribute__((target("avx512f")))
static void dot_avx512(long m, long panels, long k, float alpha, const float *a, long lda, const float *b,
                       long ps, long rs, float beta, float *c, long c_row, long c_rank) {
    for (long r0 = 0; r0 < k; r0 += 8) {
        long kr = min_long(8, k - r0);
        for (long i = 0; i < m; i += 2) {
            long i1 = i + 1 < m ? i + 1 : i;
            const float *a0 = a + i * lda, *a1 = a + i1 * lda;
            __m512 acc0[8], acc1[8];
            for (int r = 0; r < 8; r++) acc0[r] = acc1[r] = _mm512_setzero_ps();
            for (long q = 0; q < panels; q++) {
                __m512 d0 = _mm512_loadu_ps(a0 + q * W), d1 = _mm512_loadu_ps(a1 + q * W);
                const float *pq = b + q * ps + r0 * rs;
                for (int r = 0; r < 8; r++) {
                    __m512 v = _mm512_loadu_ps(pq + min_long(r, kr - 1) * rs);
                    acc0[r] = _mm512_fmadd_ps(d0, v, acc0[r]);
                    acc1[r] = _mm512_fmadd_ps(d1, v, acc1[r]);
                }
            }
            for (long r = 0; r < kr; r++) {
                float *t0 = c + i * c_row + (r0 + r) * c_rank, *t1 = c + i1 * c_row + (r0 + r) * c_rank;
                float s0 = alpha * _mm512_reduce_add_ps(acc0[r]), s1 = alpha * _mm512_reduce_add_ps(acc1[r]);
                *t1 = beta != 0.0f ? s1 + beta * *t1 : s1;
                if (i1 != i) *t0 = beta != 0.0f ? s0 + beta * *t0 : s0;
            }
        }
    }
}

static void dot_scalar(long m, long panels, long k, float alpha, const float *a, long lda, const float *b,
                       long ps, long rs, float beta, float *c, long c_row, long c_rank) {
    for (long i = 0; i < m; i++) {
        for (long r = 0; r < k; r++) {
            float sum = 0;
            for (long q = 0; q < panels; q++)
                for (int j = 0; j < W; j++) sum += a[i * lda + q * W + j] * b[q * ps + r * rs + j];
            float *target = c + i * c_row + r * c_rank;
            *target = beta != 0.0f ? alpha * sum + beta * *target : alpha * sum;
        }
    }
}

void adaptc_panel_dot(long m, long panels, long k, float alpha, const float *a, long lda, const float *b,
                      long panel_stride, long rank_stride, float beta, float *c, long c_row, long c_rank) {
    if (m < 1 || k < 1) return;
    if (adaptc_cpu_isa() == 2) dot_avx512(m, panels, k, alpha, a, lda, b, panel_stride, rank_stride, beta, c, c_row, c_rank);
    else dot_scalar(m, panels, k, alpha, a, lda, b, panel_stride, rank_stride, beta, c, c_row, c_rank);
}
