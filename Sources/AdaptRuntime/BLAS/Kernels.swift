import CKernels

/// The general-purpose building block every contraction ends in, for the
/// interpreter and for generated code alike: `C[m, n] = alpha·op(A)·op(B) + beta·C`.
/// A single row or column goes to GEMV; a product large enough to pay for the
/// fork is cut along its longer output side into `FixedBlocks` (chosen from the
/// shape, not the thread count, so results are bitwise identical for any
/// `threads`), each block one single-threaded call, the blocks spread over TBB.
public enum Kernels {
    /// Below this many flops a parallel split costs more than it saves.
    public static let parallelThreshold = 4_000_000

    @inline(__always)
    public static func gemm(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int,
        alpha: Float, a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int,
        beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int, threads: Int = 1
    ) {
        if m == 1 && k > 0 {
            // C row = a_row · op(B): a GEMV over B, split over output columns when
            // large (it is bound by reading B, which both cores can share).
            let incX = transA ? lda : 1
            let columns = 2 * n * k < parallelThreshold ? FixedBlocks(whole: n) : FixedBlocks(extent: n, unitWork: 2 * k)
            Parallel.forEach(columns.count, threads: threads) { range in
                for part in range {
                    let cols = columns[part]
                    let block = transB ? b + cols.lowerBound * ldb : b + cols.lowerBound
                    BLAS.gemv(trans: !transB, m: transB ? cols.count : k, n: transB ? k : cols.count, alpha: alpha,
                              a: block, lda: ldb, x: a, incX: incX, beta: beta, y: c + cols.lowerBound, incY: 1)
                }
            }
            return
        }
        if n == 1 && k > 0 {
            // C column = op(A) · b_column.
            BLAS.gemv(trans: transA, m: transA ? k : m, n: transA ? m : k, alpha: alpha, a: a, lda: lda,
                      x: b, incX: transB ? 1 : ldb, beta: beta, y: c, incY: ldc)
            return
        }
        let work = 2 * m * n * k
        if work < parallelThreshold {
            Kernels.product(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda,
                      b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
            return
        }
        // Above the threshold the blocks are the same for threads == 1 (run in order).
        if m >= n {
            let blocks = FixedBlocks(extent: m, unitWork: 2 * n * k)
            Parallel.forEach(blocks.count, threads: threads) { parts in
                for part in parts {
                    let rows = blocks[part]
                    Kernels.product(transA: transA, transB: transB, m: rows.count, n: n, k: k, alpha: alpha,
                              a: transA ? a + rows.lowerBound : a + rows.lowerBound * lda, lda: lda,
                              b: b, ldb: ldb, beta: beta, c: c + rows.lowerBound * ldc, ldc: ldc)
                }
            }
        } else {
            let blocks = FixedBlocks(extent: n, unitWork: 2 * m * k)
            Parallel.forEach(blocks.count, threads: threads) { parts in
                for part in parts {
                    let cols = blocks[part]
                    Kernels.product(transA: transA, transB: transB, m: m, n: cols.count, k: k, alpha: alpha,
                              a: a, lda: lda, b: transB ? b + cols.lowerBound * ldb : b + cols.lowerBound, ldb: ldb,
                              beta: beta, c: c + cols.lowerBound, ldc: ldc)
                }
            }
        }
    }
}

extension Kernels {
    /// One single-threaded product: the vectorised thin kernel for y += z·Bᵀ with
    /// a small rank (OpenBLAS packs the transposed B on every call, which there
    /// costs more than the multiply), OpenBLAS otherwise.
    @inline(__always)
    static func product(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int,
        alpha: Float, a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int,
        beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        if adaptc_thin_gemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc) { return }
        BLAS.gemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda,
                  b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
    }

    /// Runs the `count` independent contractions of one plan stage. With enough
    /// work they run side by side on TBB, each single-threaded; otherwise in order,
    /// each free to split itself. `body(i, threads)` runs contraction `i`.
    @inline(__always)
    public static func stage(_ count: Int, flops: Int, threads: Int, _ body: (Int, Int) -> Void) {
        if count > 1 && threads != 1 && flops >= parallelThreshold {
            Parallel.forEach(count, threads: threads) { range in
                for i in range { body(i, 1) }
            }
        } else {
            for i in 0..<count { body(i, threads) }
        }
    }
}
