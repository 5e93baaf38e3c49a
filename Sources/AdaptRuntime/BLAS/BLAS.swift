import CBLAS
import CKernels

/// Thin, typed wrappers over OpenBLAS, row-major throughout.
///
/// OpenBLAS is pinned to one thread: with 2 threads its thin GEMMs run 2–3×
/// slower (DESIGN §7). Parallelism comes from `Parallel` (TBB) across pairs and
/// row/column blocks instead.
public enum BLAS {
    private static let singleThreaded: Void = { openblas_set_num_threads(1) }()

    /// OpenBLAS's kernel family in use (e.g. "SkylakeX"), and the family it had
    /// chosen itself when adaptc chose again at load time because OpenBLAS did
    /// not know the CPU (see `adaptc_blas_core_chosen`); nil when it kept its own.
    public static var kernelFamily: (name: String, replaced: String?) {
        let name = openblas_get_corename().map { String(cString: $0) } ?? "unknown"
        return (name, adaptc_blas_core_replaced().map { String(cString: $0) })
    }

    /// Makes sure OpenBLAS runs single-threaded; cheap after the first call.
    @inline(__always)
    public static func configure() { _ = singleThreaded }

    /// C[m, n] = alpha · op(A) · op(B) + beta · C, where op(A) is [m, k] and op(B) is [k, n].
    /// `lda`, `ldb`, `ldc` are the row strides of the matrices as stored.
    @inline(__always)
    public static func gemm(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int,
        alpha: Float, a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int,
        beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        configure()
        if m == 0 || n == 0 { return }
        if k == 0 {
            // BLAS leaves C untouched for alpha·0; scale by beta ourselves.
            for row in 0..<m { for col in 0..<n { c[row * ldc + col] = beta == 0 ? 0 : beta * c[row * ldc + col] } }
            return
        }
        cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                    blasint(m), blasint(n), blasint(k), alpha, a, blasint(lda), b, blasint(ldb), beta, c, blasint(ldc))
    }

    /// y[m or n] = alpha · op(A) · x + beta · y for A stored [m, n] with row stride `lda`.
    /// One token row is a GEMV: 3–4× faster than a 1-row GEMM (DESIGN §7).
    @inline(__always)
    public static func gemv(
        trans: Bool, m: Int, n: Int, alpha: Float, a: UnsafePointer<Float>, lda: Int,
        x: UnsafePointer<Float>, incX: Int = 1, beta: Float, y: UnsafeMutablePointer<Float>, incY: Int = 1
    ) {
        configure()
        if m == 0 || n == 0 { return }
        cblas_sgemv(CblasRowMajor, trans ? CblasTrans : CblasNoTrans, blasint(m), blasint(n),
                    alpha, a, blasint(lda), x, blasint(incX), beta, y, blasint(incY))
    }
}
