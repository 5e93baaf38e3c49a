import CBLAS

/// LAPACKE's `lapack_int` (a macro, so not imported): int32_t in Debian's LP64 build.
typealias LAPACKInt = Int32

/// The few dense float64 factorisations the pruner needs, on small row-major
/// matrices (LAPACK through LAPACKE): thin QR and the SVD. float64 because the
/// pruner's guarantees (lost energy = sum of dropped shares, to 1e-5) are
/// statements about sums of many squares.
public enum DenseLinearAlgebra {
    /// Thin QR of `m` `[rows, cols]`: `Q` `[rows, k]` with orthonormal columns and
    /// upper-trapezoidal `R` `[k, cols]`, k = min(rows, cols) (LAPACK dgeqrf + dorgqr).
    public static func thinQR(_ m: [Double], rows: Int, cols: Int) -> (q: [Double], r: [Double], k: Int) {
        precondition(m.count == rows * cols)
        let k = min(rows, cols)
        if k == 0 { return ([], [], 0) }
        var a = m
        var tau = [Double](repeating: 0, count: k)
        let info = LAPACKE_dgeqrf(LAPACK_ROW_MAJOR, LAPACKInt(rows), LAPACKInt(cols), &a, LAPACKInt(cols), &tau)
        precondition(info == 0, "dgeqrf failed (info \(info))")
        var r = [Double](repeating: 0, count: k * cols)
        for i in 0..<k { for j in i..<cols { r[i * cols + j] = a[i * cols + j] } }
        // Q from the Householder reflectors: the first k columns of a, reflectors below the diagonal.
        var q = [Double](repeating: 0, count: rows * k)
        for i in 0..<rows { for j in 0..<k { q[i * k + j] = a[i * cols + j] } }
        let info2 = LAPACKE_dorgqr(LAPACK_ROW_MAJOR, LAPACKInt(rows), LAPACKInt(k), LAPACKInt(k), &q, LAPACKInt(k), &tau)
        precondition(info2 == 0, "dorgqr failed (info \(info2))")
        return (q, r, k)
    }

    /// Thin SVD of `m` `[rows, cols]` = U·diag(s)·Vt, s descending, U `[rows, k]`,
    /// Vt `[k, cols]`, k = min(rows, cols) (LAPACK dgesdd, divide and conquer).
    public static func svd(_ m: [Double], rows: Int, cols: Int) -> (u: [Double], s: [Double], vt: [Double], k: Int) {
        precondition(m.count == rows * cols)
        let k = min(rows, cols)
        if k == 0 { return ([], [], [], 0) }
        var a = m
        var s = [Double](repeating: 0, count: k)
        var u = [Double](repeating: 0, count: rows * k)
        var vt = [Double](repeating: 0, count: k * cols)
        let info = LAPACKE_dgesdd(LAPACK_ROW_MAJOR, CChar(UInt8(ascii: "S")), LAPACKInt(rows), LAPACKInt(cols),
                                  &a, LAPACKInt(cols), &s, &u, LAPACKInt(k), &vt, LAPACKInt(cols))
        precondition(info == 0, "dgesdd failed to converge (info \(info))")
        return (u, s, vt, k)
    }

    /// C[m, n] = op(A)·op(B) in float64 (cblas_dgemm), row-major.
    public static func multiply(_ a: [Double], _ b: [Double], m: Int, n: Int, k: Int,
                                transA: Bool = false, transB: Bool = false) -> [Double] {
        var c = [Double](repeating: 0, count: m * n)
        if m == 0 || n == 0 || k == 0 { return c }
        BLAS.configure()
        cblas_dgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                    blasint(m), blasint(n), blasint(k), 1, a, blasint(transA ? m : k), b, blasint(transB ? k : n),
                    0, &c, blasint(n))
        return c
    }
}

extension DenseLinearAlgebra {
    /// C ← op(A)·op(B) + beta·C in float64 on row-major buffers with row strides
    /// `lda`, `ldb`, `ldc` (cblas_dgemm), for products into parts of larger buffers.
    static func gemm(transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int, a: UnsafePointer<Double>, lda: Int,
                     b: UnsafePointer<Double>, ldb: Int, beta: Double = 0, c: UnsafeMutablePointer<Double>, ldc: Int) {
        if m == 0 || n == 0 { return }
        BLAS.configure()
        cblas_dgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                    blasint(m), blasint(n), blasint(k), 1, a, blasint(lda), b, blasint(ldb), beta, c, blasint(ldc))
    }
}

extension DenseLinearAlgebra {
    /// The symmetric positive semi-definite square root `S` of a Gram matrix
    /// `G = V·Λ·Vᵀ`: `S = V·√Λ·Vᵀ`, so `SᵀS = G`. Eigenvalues that round-off
    /// made negative (a singular G: fewer rows than columns, or rows in a
    /// subspace) are clipped to zero. No inverse is taken, so a singular G needs
    /// no other regularisation: directions the rows never visit weigh zero.
    public static func gramSquareRoot(_ g: [Double], n: Int) -> [Double] {
        precondition(g.count == n * n)
        // S does not depend on the order or signs of the eigenpairs.
        guard let (values, vectors) = try? Float64LinearAlgebra.symmetricEigen(g, n: n) else {
            preconditionFailure("dsyevd failed to converge on a \(n)×\(n) Gram matrix")
        }
        var scaled = vectors
        for j in 0..<n {
            let root = max(values[j], 0).squareRoot()
            for i in 0..<n { scaled[i * n + j] *= root }
        }
        return multiply(scaled, vectors, m: n, n: n, k: n, transB: true)
    }
}
