// Small-product kernels behind a plain C header (no C++ interop reaches Swift).
#ifndef ADAPTC_KERNELS_H
#define ADAPTC_KERNELS_H

#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

/// C[m, n] = alpha·op(A)·op(B) + beta·C (row-major, leading dimensions lda,
/// ldb, ldc) for the thin shape of low-rank adapters where it beats OpenBLAS:
/// a transposed op(B) with a small inner size k ≤ 8 (y += z·Bᵀ, B stored
/// [out, r]). Vectorised with AVX-512 or AVX2+FMA, chosen at run time. Returns
/// false, touching nothing, when this machine has neither or the shape is not
/// that one; the caller then uses BLAS.
bool adaptc_thin_gemm(bool trans_a, bool trans_b, long m, long n, long k, float alpha,
                      const float *a, long lda, const float *b, long ldb, float beta, float *c, long ldc);

/// Columns per panel of a packed right operand.
#define ADAPTC_PANEL_WIDTH 16

/// C[m, n] = alpha·op(A)·B + beta·C (row-major C with leading dimension ldc)
/// where B [k, n] was packed beforehand as n / ADAPTC_PANEL_WIDTH panels, panel
/// q holding B[p, 16q + j] at panels[(q·k + p)·16 + j]. n is a multiple of
/// the width. Vectorised with AVX-512 or AVX2+FMA where the CPU has them, plain
/// C otherwise. Each element is summed in the same order whatever part of C a
/// call covers, so splitting C between threads does not change results.
void adaptc_panel_gemm(bool trans_a, long m, long n, long k, float alpha, const float *a, long lda,
                       const float *panels, float beta, float *c, long ldc);

/// The VJP of adaptc_panel_gemm for A, reading the same packed B:
/// C[i, r] = beta·C + alpha·Σ_q Σ_j A[i, 16q + j]·panels[(q·k + r)·16 + j] for
/// i < m, r < k (A row-major, lda; C[i, r] at c[i·c_row + r·c_rank], so C may be
/// stored either way). Each element is summed in the same order whatever rows
/// a call covers.
void adaptc_panel_dot(long m, long panels, long k, float alpha, const float *a, long lda, const float *packed,
                      float beta, float *c, long c_row, long c_rank);

/// The same two products with B read in place rather than packed: element
/// B[p, 16q + j] of adaptc_panel_gemm (B[r, 16q + j] of adaptc_panel_dot) at
/// b[q·panel_stride + p·k_stride + j] (b[q·panel_stride + r·rank_stride + j]).
/// Packed panels are panel_stride = 16·k, k_stride = rank_stride = 16; a
/// row-major B with leading dimension ld is panel_stride = 16, k_stride = ld.
/// Thin products of any adapter (x·Aᵀ, dt·A, dtᵀ·x) take this form.
void adaptc_panel_gemm_strided(bool trans_a, long m, long n, long k, float alpha, const float *a, long lda,
                               const float *b, long panel_stride, long k_stride, float beta, float *c, long ldc);
void adaptc_panel_dot_strided(long m, long panels, long k, float alpha, const float *a, long lda, const float *b,
                              long panel_stride, long rank_stride, float beta, float *c, long c_row, long c_rank);

/// OpenBLAS's kernel family when adaptc chose it at load time, else NULL.
/// A DYNAMIC_ARCH OpenBLAS that does not know the CPU (0.3.21 on Sapphire
/// Rapids) falls back to SSE3 kernels, 4–5× slower; when OPENBLAS_CORETYPE is
/// unset and the CPU supports a wider family than the chosen one, adaptc asks
/// OpenBLAS to choose again with that family (e.g. SkylakeX for AVX-512).
/// Setting OPENBLAS_CORETYPE keeps OpenBLAS's own choice.
const char *adaptc_blas_core_chosen(void);
/// The family OpenBLAS had chosen before adaptc's choice, else NULL.
const char *adaptc_blas_core_replaced(void);

#ifdef __cplusplus
}
#endif

#endif
