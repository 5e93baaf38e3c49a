import CBLAS

/// Float64 building blocks of the tensor decompositions (TT-SVD, HOSVD, …):
/// Gram matrices of unfoldings, their eigendecomposition and thin QR. The
/// stacked weights are float32, but their Gram matrices sum thousands of
/// products and square the condition number, so they are formed and
/// factorised in float64. Matrices are row-major here.
public enum Float64LinearAlgebra {
    /// `gram += X·Xᵀ` for row-major X `[rows, width]`, both triangles written
    /// so the result can be used as a full matrix. Small Grams are one
    /// `cblas_dsyrk`; from `tiledFrom` rows on, the upper triangle is cut into
    /// fixed 256×256 tiles (`dsyrk` on the diagonal, `dgemm` above it), run in parallel on `threads`:
    /// the tiles do not depend on the thread count, so neither do the bits.
    public static func accumulateRowGram(_ x: UnsafePointer<Double>, rows: Int, width: Int,
                                         into gram: UnsafeMutablePointer<Double>, threads: Int = 1) {
        BLAS.configure()
        guard rows > 0, width > 0 else { return }
        if rows < tiledFrom {
            cblas_dsyrk(CblasRowMajor, CblasUpper, CblasNoTrans, blasint(rows), blasint(width), 1, x, blasint(width),
                        1, gram, blasint(rows))
        } else {
            let blocks = (rows + tile - 1) / tile
            let tiles = (0..<blocks).flatMap { i in (i..<blocks).map { j in (i, j) } }
            Parallel.forEach(tiles.count, threads: threads) { range in
                for (i, j) in tiles[range] {
                    let (r0, c0) = (i * tile, j * tile)
                    let (m, n) = (min(tile, rows - r0), min(tile, rows - c0))
                    if i == j {
                        // A diagonal tile is symmetric: its upper half is enough.
                        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasNoTrans, blasint(m), blasint(width), 1,
                                    x + r0 * width, blasint(width), 1, gram + r0 * rows + c0, blasint(rows))
                    } else {
                        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, blasint(m), blasint(n), blasint(width), 1,
                                    x + r0 * width, blasint(width), x + c0 * width, blasint(width),
                                    1, gram + r0 * rows + c0, blasint(rows))
                    }
                }
            }
        }
        mirrorUpper(gram, n: rows)
    }

    static let tile = 256
    static let tiledFrom = 256

    /// `gram = Xᵀ·X` for row-major X `[rows, width]` (a `[width, width]` matrix).
    public static func columnGram(_ x: UnsafePointer<Double>, rows: Int, width: Int,
                                  into gram: UnsafeMutablePointer<Double>) {
        BLAS.configure()
        gram.update(repeating: 0, count: width * width)
        guard rows > 0, width > 0 else { return }
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, blasint(width), blasint(rows), 1, x, blasint(width),
                    0, gram, blasint(width))
        mirrorUpper(gram, n: width)
    }

    private static func mirrorUpper(_ a: UnsafeMutablePointer<Double>, n: Int) {
        for i in 0..<n { for j in 0..<i { a[i * n + j] = a[j * n + i] } }
    }

    /// C `[m, n]` = alpha·op(A)·op(B) + beta·C, row-major (`cblas_dgemm`).
    public static func gemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Double = 1,
                            a: UnsafePointer<Double>, lda: Int, b: UnsafePointer<Double>, ldb: Int,
                            beta: Double = 0, c: UnsafeMutablePointer<Double>, ldc: Int) {
        BLAS.configure()
        guard m > 0, n > 0 else { return }
        guard k > 0 else {
            for row in 0..<m { for col in 0..<n { c[row * ldc + col] = beta == 0 ? 0 : beta * c[row * ldc + col] } }
            return
        }
        cblas_dgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                    blasint(m), blasint(n), blasint(k), alpha, a, blasint(lda), b, blasint(ldb), beta, c, blasint(ldc))
    }

    /// Eigenpairs of the symmetric `[n, n]` matrix `a`, largest first
    /// (`dsyevd`, divide and conquer): `values[k]` and eigenvector k in
    /// column k of row-major `vectors [n, n]`. Each vector's sign is fixed
    /// (its largest-magnitude entry positive) so results do not depend on
    /// LAPACK's arbitrary choice.
    public static func symmetricEigen(_ a: [Double], n: Int) throws -> (values: [Double], vectors: [Double]) {
        BLAS.configure()
        guard n > 0 else { return ([], []) }
        var z = a
        var w = [Double](repeating: 0, count: n)
        let info = LAPACKE_dsyevd(LAPACK_ROW_MAJOR, CChar(UInt8(ascii: "V")), CChar(UInt8(ascii: "U")),
                                  Int32(n), &z, Int32(n), &w)
        guard info == 0 else { throw LAPACKError(routine: "dsyevd", info: Int(info)) }
        // dsyevd returns ascending values: reverse the columns.
        var values = [Double](repeating: 0, count: n), vectors = [Double](repeating: 0, count: n * n)
        for k in 0..<n {
            let source = n - 1 - k
            values[k] = w[source]
            var largest = 0.0, sign = 1.0
            for i in 0..<n where abs(z[i * n + source]) > largest {
                largest = abs(z[i * n + source])
                sign = z[i * n + source] < 0 ? -1 : 1
            }
            for i in 0..<n { vectors[i * n + k] = sign * z[i * n + source] }
        }
        return (values, vectors)
    }

    /// Thin QR of row-major `a [m, n]`, m ≥ n: Q `[m, n]` with orthonormal
    /// columns and upper-triangular R `[n, n]`, both row-major (`dgeqrf`, `dorgqr`).
    public static func qr(_ a: [Double], m: Int, n: Int) throws -> (q: [Double], r: [Double]) {
        BLAS.configure()
        precondition(m >= n, "qr needs m ≥ n")
        guard n > 0 else { return ([], []) }
        var q = a
        var tau = [Double](repeating: 0, count: n)
        var info = LAPACKE_dgeqrf(LAPACK_ROW_MAJOR, Int32(m), Int32(n), &q, Int32(n), &tau)
        guard info == 0 else { throw LAPACKError(routine: "dgeqrf", info: Int(info)) }
        var r = [Double](repeating: 0, count: n * n)
        for i in 0..<n { for j in i..<n { r[i * n + j] = q[i * n + j] } }
        info = LAPACKE_dorgqr(LAPACK_ROW_MAJOR, Int32(m), Int32(n), Int32(n), &q, Int32(n), &tau)
        guard info == 0 else { throw LAPACKError(routine: "dorgqr", info: Int(info)) }
        return (q, r)
    }
}
