// Small-product kernels behind a plain C header (no C++ interop reaches Swift).
#ifndef ADAPTC_KERNELS_H
#define ADAPTC_KERNELS_H

#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

/// C[m, n] = alpha·op(A)·op(B) + beta·C (row-major, leading dimensions lda,
/// ldb, ldc) for the thin shapes of low-rank adapters: a small inner size k
/// (y += z·Bᵀ) or few output columns n (z = x·Aᵀ). Vectorised with AVX-512 or
/// AVX2+FMA, chosen at run time. Returns false, touching nothing, when this
/// machine has neither or the shape is not thin; the caller then uses BLAS.
bool adaptc_thin_gemm(bool trans_a, bool trans_b, long m, long n, long k, float alpha,
                      const float *a, long lda, const float *b, long ldb, float beta, float *c, long ldc);

#ifdef __cplusplus
}
#endif

#endif
