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
/// for B [k, n], n a multiple of the width, with element B[p, 16q + j] at
/// b[q·panel_stride + p·k_stride + j]: packed beforehand as panels
/// (panel_stride = 16·k, k_stride = 16, the order the kernel reads) or read in
/// place (a row-major B with leading dimension ld: panel_stride = 16,
/// k_stride = ld). Vectorised with AVX-512 or AVX2+FMA where the CPU has them,
/// plain C otherwise. Each element is summed in the same order whatever part
/// of C a call covers, so splitting C between threads does not change results.
void adaptc_panel_gemm(bool trans_a, long m, long n, long k, float alpha, const float *a, long lda,
                       const float *b, long panel_stride, long k_stride, float beta, float *c, long ldc);

/// The VJP of adaptc_panel_gemm for A, or any A·Bᵀ with few columns:
/// C[i, r] = beta·C + alpha·Σ_q Σ_j A[i, 16q + j]·B[r, 16q + j] for i < m,
/// r < k, with B[r, 16q + j] at b[q·panel_stride + r·rank_stride + j] (packed:
/// panel_stride = 16·k, rank_stride = 16; in place: 16 and ld). A row-major,
/// lda; C[i, r] at c[i·c_row + r·c_rank], so C may be stored either way. Each
/// element is summed in the same order whatever rows a call covers.
void adaptc_panel_dot(long m, long panels, long k, float alpha, const float *a, long lda, const float *b,
                      long panel_stride, long rank_stride, float beta, float *c, long c_row, long c_rank);

/// The memory floor of a benchmark (DESIGN §8), one contiguous block at a
/// time so a caller can spread a buffer's blocks over threads: plain vector
/// loads and stores, as the kernels move data. adaptc_stream_read reads
/// x[0..count) and returns its sum (so the reads are kept); adaptc_stream_update
/// reads and writes y[0..count), y[i] += delta (an accumulated output, y +=);
/// adaptc_stream_write writes y[i] = value (a fresh output).
float adaptc_stream_read(const float *x, long count);
void adaptc_stream_update(float *y, long count, float delta);
void adaptc_stream_write(float *y, long count, float value);

/// The compute floor: fused multiply-adds on registers alone, as many
/// independent chains as keep the FMA ports busy (AVX-512 or AVX2+FMA, chosen
/// at run time). adaptc_fma_width() chains (lanes) step at once; each starts at
/// 0 and takes `steps` steps s ← s·a + b, so a call does 2·steps·width FLOPs and
/// returns the sum of the chains' final values, in double.
long adaptc_fma_width(void);
double adaptc_fma_loop(long steps, float a, float b);

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
