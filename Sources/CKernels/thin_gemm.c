// Thin GEMMs for low-rank adapters (see adaptc_kernels.h).
//
// One kernel covers both thin shapes: op(B) is made available as panels of
// 16 columns (read in place when B's rows are contiguous, packed once per call
// otherwise), then each row i of C, block after block, is Σ_p A[i, p]·panel[p]
// with the row's A values broadcast — k fused multiply-adds per 16 outputs,
// with several accumulators so the adds do not wait on each other. Rows go
// outermost so C streams through memory once, in order (column blocks
// outermost touched 64 pages per sweep and ran at a fraction of bandwidth). Each output is summed in the same order whatever the
// caller's split, so results do not depend on the thread count.
//
// Compiled without global ISA flags (no unsafeFlags in the package): the
// vector bodies carry `target` attributes and are picked at run time.
#include "adaptc_kernels.h"
#include "kernel_common.h"

#include <immintrin.h>
#include <stdlib.h>
#include <string.h>

// Where this kernel beats OpenBLAS's SkylakeX sgemm (96 products of 64×1024,
// one thread, side by side): a transposed op(B) with k ≤ 8, as in y += z·Bᵀ
// with B stored [out, r] (2.0 ms against 4.6 ms). Larger k, an untransposed B
// or few columns (z = x·Aᵀ) are 1.1–9× faster in OpenBLAS, which packs for a
// register-blocked micro-kernel where this one streams one row at a time.
#define THIN_K 8

// Block `block` of op(B), 16 columns (zero past n), into panel[p * 16 + j].
static void pack_panel(bool trans_b, long n, long k, long block, const float *b, long ldb, float *panel) {
    long j0 = block * 16;
    for (long p = 0; p < k; p++) {
        float *row = panel + p * 16;
        for (long j = 0; j < 16; j++) row[j] = j0 + j < n ? adaptc_element(b, ldb, trans_b, p, j0 + j) : 0.0f;
    }
}

// A full block of a transposed B (column j of op(B) is row j of B): each of the
// k rows of the panel is one gather of 16 floats, ldb apart.
__attribute__((target("avx512f")))
static void pack_transposed_avx512(long k, long block, const float *b, long ldb, float *panel) {
    const __m512i rows = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                            _mm512_set1_epi32((int)ldb));
    const float *start = b + block * 16 * ldb;
    for (long p = 0; p < k; p++) _mm512_storeu_ps(panel + p * 16, _mm512_i32gather_ps(rows, start + p, 4));
}

// Where block `block` of op(B) can be read: in place (rows of B contiguous and
// the block full) or from its packed panel.
// Where op(B)'s block is read: in place when B's rows are contiguous (the
// AVX-512 bodies mask a partial block's loads, so any block qualifies there;
// AVX2 needs full blocks), else from the packed panels, which start at block
// `first` (0 when B is transposed, else the partial last block).

static inline long first_packed(bool trans_b, long n) {
    if (trans_b) return 0;
    return adaptc_cpu_isa() == 2 ? (n + 15) / 16 : n / 16;
}

static inline const float *panel_rows(bool trans_b, long n, long block, const float *b, long ldb, long k,
                                      const float *panels, long *stride) {
    long first = first_packed(trans_b, n);
    if (!trans_b && block < first) {
        *stride = ldb;
        return b + block * 16;
    }
    *stride = 16;
    return panels + (block - first) * 16 * k;
}

// Few columns, long k (z = x·Aᵀ): one 16-column block, four rows at a time
// so each panel load feeds four multiply-adds; the sum over p rotates through
// four accumulators per row (FMAs in flight, chains a quarter as long).
#define COLUMN_ROWS 4
#define COLUMN_CHAINS 4

__attribute__((target("avx512f")))
static void thin_columns_avx512(bool trans_a, long m, long n, long k, float alpha, const float *a, long lda,
                                const float *rows, long stride, float beta, float *c, long ldc) {
    __mmask16 mask = (__mmask16)((1u << n) - 1u);
    __m512 va = _mm512_set1_ps(alpha);
    for (long i = 0; i < m; i += COLUMN_ROWS) {
        long row[COLUMN_ROWS];
        // Rows past m repeat the last one; their results are not stored.
        for (int r = 0; r < COLUMN_ROWS; r++) row[r] = i + r < m ? i + r : i;
        __m512 acc[COLUMN_ROWS][COLUMN_CHAINS];
        for (int r = 0; r < COLUMN_ROWS; r++)
            for (int q = 0; q < COLUMN_CHAINS; q++) acc[r][q] = _mm512_setzero_ps();
        long p = 0;
        for (; p + COLUMN_CHAINS <= k; p += COLUMN_CHAINS) {
            for (int q = 0; q < COLUMN_CHAINS; q++) {
                __m512 v = _mm512_maskz_loadu_ps(mask, rows + (p + q) * stride);
                for (int r = 0; r < COLUMN_ROWS; r++)
                    acc[r][q] = _mm512_fmadd_ps(_mm512_set1_ps(adaptc_element(a, lda, trans_a, row[r], p + q)), v, acc[r][q]);
            }
        }
        for (int q = 0; p < k; p++, q++) {
            __m512 v = _mm512_maskz_loadu_ps(mask, rows + p * stride);
            for (int r = 0; r < COLUMN_ROWS; r++)
                acc[r][q] = _mm512_fmadd_ps(_mm512_set1_ps(adaptc_element(a, lda, trans_a, row[r], p)), v, acc[r][q]);
        }
        for (int r = 0; r < COLUMN_ROWS && i + r < m; r++) {
            __m512 sum = _mm512_add_ps(_mm512_add_ps(acc[r][0], acc[r][1]), _mm512_add_ps(acc[r][2], acc[r][3]));
            sum = _mm512_mul_ps(sum, va);
            float *target = c + (i + r) * ldc;
            if (beta != 0.0f) sum = _mm512_fmadd_ps(_mm512_set1_ps(beta), _mm512_maskz_loadu_ps(mask, target), sum);
            _mm512_mask_storeu_ps(target, mask, sum);
        }
    }
}

// Small k, many columns (y += z·Bᵀ): two rows × four 16-column blocks per
// step, so each broadcast of A feeds four multiply-adds and each panel load
// two; one chain over p per output (k is small). The accumulators are named
// registers, not an array indexed by a run-time count, so they never spill.
__attribute__((target("avx512f")))
static inline void rank_store(float *target, __mmask16 mask, __m512 acc, __m512 va, float beta) {
    __m512 sum = _mm512_mul_ps(acc, va);
    if (beta != 0.0f) sum = _mm512_fmadd_ps(_mm512_set1_ps(beta), _mm512_maskz_loadu_ps(mask, target), sum);
    _mm512_mask_storeu_ps(target, mask, sum);
}

__attribute__((target("avx512f")))
static void thin_rank_avx512(bool trans_a, bool trans_b, long m, long n, long k, float alpha, const float *a, long lda,
                             const float *b, long ldb, float beta, float *c, long ldc, const float *panels) {
    long blocks = (n + 15) / 16, full = n / 16;
    __m512 va = _mm512_set1_ps(alpha);
    const __mmask16 all = 0xFFFF;
    for (long i = 0; i < m; i += 2) {
        long i1 = i + 1 < m ? i + 1 : i;  // an odd last row is computed twice into the same place
        float *c0 = c + i * ldc, *c1 = c + i1 * ldc;
        long block = 0;
        for (; block + 4 <= full; block += 4) {
            long s0, s1, s2, s3;
            const float *r0 = panel_rows(trans_b, n, block, b, ldb, k, panels, &s0);
            const float *r1 = panel_rows(trans_b, n, block + 1, b, ldb, k, panels, &s1);
            const float *r2 = panel_rows(trans_b, n, block + 2, b, ldb, k, panels, &s2);
            const float *r3 = panel_rows(trans_b, n, block + 3, b, ldb, k, panels, &s3);
            __m512 t0 = _mm512_setzero_ps(), t1 = _mm512_setzero_ps(), t2 = _mm512_setzero_ps(), t3 = _mm512_setzero_ps();
            __m512 u0 = _mm512_setzero_ps(), u1 = _mm512_setzero_ps(), u2 = _mm512_setzero_ps(), u3 = _mm512_setzero_ps();
            for (long p = 0; p < k; p++) {
                __m512 x0 = _mm512_set1_ps(adaptc_element(a, lda, trans_a, i, p)), x1 = _mm512_set1_ps(adaptc_element(a, lda, trans_a, i1, p));
                __m512 v0 = _mm512_loadu_ps(r0 + p * s0), v1 = _mm512_loadu_ps(r1 + p * s1);
                __m512 v2 = _mm512_loadu_ps(r2 + p * s2), v3 = _mm512_loadu_ps(r3 + p * s3);
                t0 = _mm512_fmadd_ps(x0, v0, t0); u0 = _mm512_fmadd_ps(x1, v0, u0);
                t1 = _mm512_fmadd_ps(x0, v1, t1); u1 = _mm512_fmadd_ps(x1, v1, u1);
                t2 = _mm512_fmadd_ps(x0, v2, t2); u2 = _mm512_fmadd_ps(x1, v2, u2);
                t3 = _mm512_fmadd_ps(x0, v3, t3); u3 = _mm512_fmadd_ps(x1, v3, u3);
            }
            long j0 = block * 16;
            // The bottom row first: when m is odd it aliases the top row, which must win.
            rank_store(c1 + j0, all, u0, va, beta); rank_store(c1 + j0 + 16, all, u1, va, beta);
            rank_store(c1 + j0 + 32, all, u2, va, beta); rank_store(c1 + j0 + 48, all, u3, va, beta);
            if (i1 != i) {
                rank_store(c0 + j0, all, t0, va, beta); rank_store(c0 + j0 + 16, all, t1, va, beta);
                rank_store(c0 + j0 + 32, all, t2, va, beta); rank_store(c0 + j0 + 48, all, t3, va, beta);
            }
        }
        for (; block < blocks; block++) {
            long s0, j0 = block * 16, w = n - j0 < 16 ? n - j0 : 16;
            __mmask16 mask = (__mmask16)((1u << w) - 1u);
            const float *r0 = panel_rows(trans_b, n, block, b, ldb, k, panels, &s0);
            __m512 t0 = _mm512_setzero_ps(), u0 = _mm512_setzero_ps();
            for (long p = 0; p < k; p++) {
                __m512 v0 = _mm512_maskz_loadu_ps(mask, r0 + p * s0);
                t0 = _mm512_fmadd_ps(_mm512_set1_ps(adaptc_element(a, lda, trans_a, i, p)), v0, t0);
                u0 = _mm512_fmadd_ps(_mm512_set1_ps(adaptc_element(a, lda, trans_a, i1, p)), v0, u0);
            }
            rank_store(c1 + j0, mask, u0, va, beta);
            if (i1 != i) rank_store(c0 + j0, mask, t0, va, beta);
        }
    }
}

__attribute__((target("avx512f")))
static void thin_avx512(bool trans_a, bool trans_b, long m, long n, long k, float alpha, const float *a, long lda,
                        const float *b, long ldb, float beta, float *c, long ldc, const float *panels) {
    if (n <= 16) {
        long stride;
        const float *rows = panel_rows(trans_b, n, 0, b, ldb, k, panels, &stride);
        thin_columns_avx512(trans_a, m, n, k, alpha, a, lda, rows, stride, beta, c, ldc);
    } else {
        thin_rank_avx512(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, panels);
    }
}

__attribute__((target("avx2,fma")))
static void thin_avx2(bool trans_a, bool trans_b, long m, long n, long k, float alpha, const float *a, long lda,
                      const float *b, long ldb, float beta, float *c, long ldc, const float *panels) {
    long blocks = (n + 15) / 16;
    for (long i = 0; i < m; i++) {
        for (long block = 0; block < blocks; block++) {
            long j0 = block * 16, w = n - j0 < 16 ? n - j0 : 16;
            long stride;
            const float *rows = panel_rows(trans_b, n, block, b, ldb, k, panels, &stride);
            __m256 lo0 = _mm256_setzero_ps(), hi0 = _mm256_setzero_ps(), lo1 = _mm256_setzero_ps(), hi1 = _mm256_setzero_ps();
            long p = 0;
            for (; p + 2 <= k; p += 2) {
                __m256 s0 = _mm256_set1_ps(adaptc_element(a, lda, trans_a, i, p)), s1 = _mm256_set1_ps(adaptc_element(a, lda, trans_a, i, p + 1));
                const float *r0 = rows + p * stride, *r1 = rows + (p + 1) * stride;
                lo0 = _mm256_fmadd_ps(s0, _mm256_loadu_ps(r0), lo0);
                hi0 = _mm256_fmadd_ps(s0, _mm256_loadu_ps(r0 + 8), hi0);
                lo1 = _mm256_fmadd_ps(s1, _mm256_loadu_ps(r1), lo1);
                hi1 = _mm256_fmadd_ps(s1, _mm256_loadu_ps(r1 + 8), hi1);
            }
            for (; p < k; p++) {
                __m256 s0 = _mm256_set1_ps(adaptc_element(a, lda, trans_a, i, p));
                const float *r0 = rows + p * stride;
                lo0 = _mm256_fmadd_ps(s0, _mm256_loadu_ps(r0), lo0);
                hi0 = _mm256_fmadd_ps(s0, _mm256_loadu_ps(r0 + 8), hi0);
            }
            float out[16];
            _mm256_storeu_ps(out, _mm256_mul_ps(_mm256_add_ps(lo0, lo1), _mm256_set1_ps(alpha)));
            _mm256_storeu_ps(out + 8, _mm256_mul_ps(_mm256_add_ps(hi0, hi1), _mm256_set1_ps(alpha)));
            float *target = c + i * ldc + j0;
            for (long j = 0; j < w; j++) target[j] = beta != 0.0f ? out[j] + beta * target[j] : out[j];
        }
    }
}

bool adaptc_thin_gemm(bool trans_a, bool trans_b, long m, long n, long k, float alpha,
                      const float *a, long lda, const float *b, long ldb, float beta, float *c, long ldc) {
    if (m < 1 || n < 1 || k < 1 || k > THIN_K || !trans_b) return false;
    int isa = adaptc_cpu_isa();
    if (isa == 0) return false;
    // Packed panels: every block when B is stored transposed, else only a partial last block.
    long blocks = (n + 15) / 16;
    long first = first_packed(trans_b, n);
    size_t floats = (size_t)(blocks - first) * 16 * (size_t)k;
    float stack[16 * 1024];
    float *storage = floats <= sizeof(stack) / sizeof(float) ? stack : (float *)malloc(sizeof(float) * floats);
    if (!storage) return false;
    float *panels = storage;
    // Gathers index with 32-bit offsets: 15·ldb must fit.
    bool gather = isa == 2 && trans_b && ldb <= (1L << 26);
    for (long block = first; block < blocks; block++) {
        float *panel = panels + (block - first) * 16 * k;
        if (gather && (block + 1) * 16 <= n) pack_transposed_avx512(k, block, b, ldb, panel);
        else pack_panel(trans_b, n, k, block, b, ldb, panel);
    }
    if (isa == 2) {
        thin_avx512(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, panels);
    } else {
        thin_avx2(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, panels);
    }
    if (storage != stack) free(storage);
    return true;
}
