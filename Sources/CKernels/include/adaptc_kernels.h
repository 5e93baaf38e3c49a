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
