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
    /// to Householder QR, so the result is always orthonormal.
    public static func orthonormalizeFast(m: Int, n: Int, a: UnsafeMutablePointer<Float>) throws {
        BLAS.configure()
        precondition(m >= n, "orthonormalize needs m ≥ n")
        if n == 0 { return }
        let gram = UnsafeMutablePointer<Float>.allocate(capacity: n * n)
        defer { gram.deallocate() }
        for _ in 0..<2 {
            cblas_ssyrk(CblasColMajor, CblasUpper, CblasTrans, Int32(n), Int32(m), 1, a, Int32(m), 0, gram, Int32(n))
            let info = LAPACKE_spotrf(LAPACK_COL_MAJOR, CChar(UInt8(ascii: "U")), Int32(n), gram, Int32(n))
            var smallest = Float.infinity, largest: Float = 0
            for i in 0..<n {
                smallest = min(smallest, abs(gram[i * n + i]))
                largest = max(largest, abs(gram[i * n + i]))
            }
            guard info == 0, smallest > 0, largest / smallest < 1e3 else {
                try orthonormalize(m: m, n: n, a: a)
                return
            }
            cblas_strsm(CblasColMajor, CblasRight, CblasUpper, CblasNoTrans, CblasNonUnit, Int32(m), Int32(n), 1,
                        gram, Int32(n), a, Int32(m))
        }
    }
}
