import CBLAS

/// A LAPACK routine that reported failure (an illegal argument is a bug; a
/// positive `info` means the algorithm did not converge).
public struct LAPACKError: Error, CustomStringConvertible, Sendable {
    public let routine: String
    public let info: Int
    public var description: String {
        info < 0 ? "\(routine): argument \(-info) is invalid" : "\(routine) did not converge (info \(info))"
    }
}

/// Thin wrappers over LAPACKE beside `BLAS`. Matrices are column-major here,
/// as LAPACK's own layout: a row-major [rows, cols] buffer is the column-major
/// [cols, rows] transpose, which the callers use to avoid LAPACKE's copies.
public enum LAPACK {
    /// Thin SVD of the column-major [m, n] matrix `a` (destroyed), by divide
    /// and conquer (`sgesdd`, jobz = S): `a = U·diag(s)·Vᵀ`, `u` column-major
    /// [m, k], `vt` column-major [k, n], `s` descending, k = min(m, n).
    public static func svd(m: Int, n: Int, a: UnsafeMutablePointer<Float>,
                           s: UnsafeMutablePointer<Float>, u: UnsafeMutablePointer<Float>,
                           vt: UnsafeMutablePointer<Float>) throws {
        BLAS.configure()
        let k = min(m, n)
        let info = LAPACKE_sgesdd(LAPACK_COL_MAJOR, CChar(UInt8(ascii: "S")), Int32(m), Int32(n),
                                  a, Int32(max(m, 1)), s, u, Int32(max(m, 1)), vt, Int32(max(k, 1)))
        guard info == 0 else { throw LAPACKError(routine: "sgesdd", info: Int(info)) }
    }

    /// Householder QR of the column-major [m, n] matrix `a` (m ≥ n), in place:
    /// on return `a` holds Q's first n columns (`sgeqrf` then `sorgqr`). When
    /// `r` is given it receives the upper-triangular R, column-major [n, n].
    public static func orthonormalize(m: Int, n: Int, a: UnsafeMutablePointer<Float>,
                                      r: UnsafeMutablePointer<Float>? = nil) throws {
        BLAS.configure()
        precondition(m >= n, "orthonormalize needs m ≥ n")
        if n == 0 { return }
        let tau = UnsafeMutablePointer<Float>.allocate(capacity: n)
        defer { tau.deallocate() }
        var info = LAPACKE_sgeqrf(LAPACK_COL_MAJOR, Int32(m), Int32(n), a, Int32(m), tau)
        guard info == 0 else { throw LAPACKError(routine: "sgeqrf", info: Int(info)) }
        if let r {
            for column in 0..<n {
                for row in 0..<n { r[column * n + row] = row <= column ? a[column * m + row] : 0 }
            }
        }
        info = LAPACKE_sorgqr(LAPACK_COL_MAJOR, Int32(m), Int32(n), Int32(n), a, Int32(m), tau)
        guard info == 0 else { throw LAPACKError(routine: "sorgqr", info: Int(info)) }
    }

    /// Thin QR of the column-major [m, n] matrix `a` (destroyed), any shape:
    /// `q` column-major [m, k] with orthonormal columns, `r` column-major
    /// [k, n] upper trapezoidal, k = min(m, n) (as `torch.linalg.qr`'s reduced mode).
    public static func qr(m: Int, n: Int, a: UnsafeMutablePointer<Float>,
                          q: UnsafeMutablePointer<Float>, r: UnsafeMutablePointer<Float>) throws {
        BLAS.configure()
        let k = min(m, n)
        if k == 0 { return }
        let tau = UnsafeMutablePointer<Float>.allocate(capacity: k)
        defer { tau.deallocate() }
        var info = LAPACKE_sgeqrf(LAPACK_COL_MAJOR, Int32(m), Int32(n), a, Int32(m), tau)
        guard info == 0 else { throw LAPACKError(routine: "sgeqrf", info: Int(info)) }
        for column in 0..<n {
            for row in 0..<k { r[column * k + row] = row <= column ? a[column * m + row] : 0 }
        }
        q.update(from: a, count: m * k)
        info = LAPACKE_sorgqr(LAPACK_COL_MAJOR, Int32(m), Int32(k), Int32(k), q, Int32(m), tau)
        guard info == 0 else { throw LAPACKError(routine: "sorgqr", info: Int(info)) }
    }

    /// Orthonormal columns spanning the column-major [m, n] matrix `a` (m ≥ n),
    /// in place, by CholeskyQR2 (Fukaya et al. 2014): R from the Cholesky
    /// factor of the Gram matrix aᵀa, a ← a·R⁻¹, twice. All level-3 BLAS,
    /// where Householder QR of a tall, thin matrix runs at GEMV speed. Valid
    /// while cond(a) ≪ ε^(−1/2) ≈ 4000 in float32; a pass whose R says
    /// otherwise (or whose Gram matrix is not positive definite) falls back
    /// to Householder QR, so the result is always orthonormal. When `r` is
    /// given it receives R (column-major [n, n], upper), with a_in = Q·R.
    public static func orthonormalizeFast(m: Int, n: Int, a: UnsafeMutablePointer<Float>,
                                          r: UnsafeMutablePointer<Float>? = nil) throws {
        BLAS.configure()
        precondition(m >= n, "orthonormalize needs m ≥ n")
        if n == 0 { return }
        let gram = UnsafeMutablePointer<Float>.allocate(capacity: n * n)
        defer { gram.deallocate() }
        if let r { identity(r, n: n) }
        for _ in 0..<2 {
            guard choleskyOfGram(a, ld: m, columnsStored: true, m: m, n: n, into: gram) else {
                try orthonormalize(m: m, n: n, a: a, r: r == nil ? nil : gram)
                if let r { accumulate(gram, into: r, n: n) }
                return
            }
            cblas_strsm(CblasColMajor, CblasRight, CblasUpper, CblasNoTrans, CblasNonUnit, Int32(m), Int32(n), 1,
                        gram, Int32(n), a, Int32(m))
            if let r { accumulate(gram, into: r, n: n) }
        }
    }

    /// `orthonormalizeFast` for a tall [m, n] matrix stored row by row (row-major,
    /// leading dimension `lda` ≥ n, i.e. column-major [n, m] — the layout in
    /// which a tall factor is OpenBLAS's cheaper right-hand GEMM operand):
    /// CholeskyQR2 as there, a ← (R⁻ᵀ·aᵀ)ᵀ, with the same Householder fallback.
    public static func orthonormalizeRows(m: Int, n: Int, a: UnsafeMutablePointer<Float>, lda: Int,
                                          r: UnsafeMutablePointer<Float>? = nil) throws {
        BLAS.configure()
        precondition(m >= n && lda >= n, "orthonormalizeRows needs m ≥ n and lda ≥ n")
        if n == 0 { return }
        let gram = UnsafeMutablePointer<Float>.allocate(capacity: n * n)
        let product = UnsafeMutablePointer<Float>.allocate(capacity: n * m)
        defer {
            gram.deallocate()
            product.deallocate()
        }
        if let r { identity(r, n: n) }
        for _ in 0..<2 {
            guard choleskyOfGram(a, ld: lda, columnsStored: false, m: m, n: n, into: gram) else {
                // Householder on a column-major copy.
                let tall = UnsafeMutablePointer<Float>.allocate(capacity: m * n)
                defer { tall.deallocate() }
                for row in 0..<m { for column in 0..<n { tall[column * m + row] = a[row * lda + column] } }
                try orthonormalize(m: m, n: n, a: tall, r: r == nil ? nil : gram)
                for row in 0..<m { for column in 0..<n { a[row * lda + column] = tall[column * m + row] } }
                if let r { accumulate(gram, into: r, n: n) }
                return
            }
            if let r { accumulate(gram, into: r, n: n) }
            // a ← R⁻ᵀ·a by an explicit inverse and a GEMM: OpenBLAS's triangular
            // solve from the left with Rᵀ runs at a fraction of GEMM speed here.
            for column in 0..<n { for row in (column + 1)..<n { gram[column * n + row] = 0 } }
            let inverted = LAPACKE_strtri(LAPACK_COL_MAJOR, CChar(UInt8(ascii: "U")), CChar(UInt8(ascii: "N")),
                                          Int32(n), gram, Int32(n))
            guard inverted == 0 else { throw LAPACKError(routine: "strtri", info: Int(inverted)) }
            cblas_sgemm(CblasColMajor, CblasTrans, CblasNoTrans, Int32(n), Int32(m), Int32(n), 1, gram, Int32(n),
                        a, Int32(lda), 0, product, Int32(n))
            for row in 0..<m { (a + row * lda).update(from: product + row * n, count: n) }
        }
    }

    /// R (column-major [n, n], upper) of the tall [m, n] matrix `a` from the Cholesky
    /// factor of its Gram matrix aᵀa, into `gram`. `a` is column-major with leading
    /// dimension `ld` when `columnsStored`, else row-major. False when the Gram
    /// matrix is not positive definite or R's diagonal spans 1e3 or more
    /// (cond(a) too large for CholeskyQR in float32): the caller falls back.
    private static func choleskyOfGram(_ a: UnsafeMutablePointer<Float>, ld: Int, columnsStored: Bool, m: Int, n: Int,
                                       into gram: UnsafeMutablePointer<Float>) -> Bool {
        cblas_ssyrk(CblasColMajor, CblasUpper, columnsStored ? CblasTrans : CblasNoTrans, Int32(n), Int32(m), 1, a,
                    Int32(ld), 0, gram, Int32(n))
        let info = LAPACKE_spotrf(LAPACK_COL_MAJOR, CChar(UInt8(ascii: "U")), Int32(n), gram, Int32(n))
        var smallest = Float.infinity, largest: Float = 0
        for i in 0..<n {
            smallest = min(smallest, abs(gram[i * n + i]))
            largest = max(largest, abs(gram[i * n + i]))
        }
        return info == 0 && smallest > 0 && largest / smallest < 1e3
    }

    /// r ← the [n, n] identity: R accumulates the passes' factors from there.
    private static func identity(_ r: UnsafeMutablePointer<Float>, n: Int) {
        r.update(repeating: 0, count: n * n)
        for i in 0..<n { r[i * n + i] = 1 }
    }

    /// r ← (upper part of `factor`)·r, both column-major [n, n] upper triangular.
    private static func accumulate(_ factor: UnsafeMutablePointer<Float>, into r: UnsafeMutablePointer<Float>, n: Int) {
        // potrf leaves the strictly lower part of `gram` as it was; trmm reads the upper only.
        cblas_strmm(CblasColMajor, CblasLeft, CblasUpper, CblasNoTrans, CblasNonUnit, Int32(n), Int32(n), 1,
                    factor, Int32(n), r, Int32(n))
    }
}
