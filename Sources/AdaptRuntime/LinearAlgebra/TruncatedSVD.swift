/// r singular triplets of a row-major [m, n] matrix W: `U` row-major [m, r],
/// `sigma` [r], `Vt` row-major [r, n], so that `U·diag(sigma)·Vt` is W's
/// best rank-r approximation (or, for `.smallest`, its r weakest directions).
public struct TruncatedSVD: Sendable {
    public var m: Int, n: Int, rank: Int
    public var u: [Float]
    public var sigma: [Float]
    public var vt: [Float]
    /// ‖W‖²_F in float64, so `capturedEnergy` needs no second pass over W.
    public var totalEnergy: Double

    /// Σ σ² of the kept triplets over ‖W‖²_F.
    public var capturedEnergy: Double {
        totalEnergy == 0 ? 1 : sigma.reduce(0.0) { $0 + Double($1) * Double($1) } / totalEnergy
    }

    public enum Selection: Sendable { case largest, smallest }

    /// Settings of Halko, Martinsson & Tropp's randomized range finder (2011,
    /// Algorithms 4.4 and 5.1): `oversampling` extra columns p, `powerIterations`
    /// q passes through WᵀW, each re-orthonormalised (Algorithm 4.4) so that
    /// float32 rounding does not wash out the smaller singular directions.
    public struct Randomized: Sendable, Equatable {
        public var oversampling: Int
        public var powerIterations: Int
        public var seed: UInt64
        public init(oversampling: Int = 16, powerIterations: Int = 4, seed: UInt64 = 0) {
            self.oversampling = oversampling
            self.powerIterations = powerIterations
            self.seed = seed
        }
    }

    /// LAPACK `sgesdd` on the whole matrix: exact up to float32 rounding.
    public static func exact(_ w: UnsafeBufferPointer<Float>, m: Int, n: Int, rank: Int,
                             selection: Selection = .largest) throws -> TruncatedSVD {
        precondition(w.count == m * n && rank <= min(m, n))
        let k = min(m, n)
        // Row-major W [m, n] is column-major Wᵀ [n, m] = V·Σ·Uᵀ: LAPACK's "U" of
        // Wᵀ, column-major [n, k], is row-major Vt [k, n], and its "Vᵀ",
        // column-major [k, m], is row-major U [m, k]. No transposition needed.
        var a = Array(w)
        var s = [Float](repeating: 0, count: k)
        var vtFull = [Float](repeating: 0, count: k * n)
        var uFull = [Float](repeating: 0, count: m * k)
        try LAPACK.svd(m: n, n: m, a: &a, s: &s, u: &vtFull, vt: &uFull)
        let kept = selection == .largest ? 0..<rank : (k - rank)..<k
        var result = TruncatedSVD(m: m, n: n, rank: rank, u: [], sigma: Array(s[kept]), vt: [],
                                  totalEnergy: s.reduce(0.0) { $0 + Double($1) * Double($1) })
        result.u = (0..<m).flatMap { row in uFull[(row * k + kept.lowerBound)..<(row * k + kept.upperBound)] }
        result.vt = Array(vtFull[(kept.lowerBound * n)..<(kept.upperBound * n)])
        return result
    }

    /// The r largest triplets by a randomized range finder with power iterations
    /// (Halko et al. 2011): Y = W·Ω, then q times Z = orth(Wᵀ·Q), Q = orth(W·Z),
    /// orth by CholeskyQR2 (`LAPACK.orthonormalizeFast`),
    /// then the SVD of the small Qᵀ·W. Deterministic for a seed (OpenBLAS runs
    /// single-threaded, DESIGN §7).
    public static func randomized(_ w: UnsafeBufferPointer<Float>, m: Int, n: Int, rank: Int,
                                  settings: Randomized) throws -> TruncatedSVD {
        precondition(w.count == m * n && rank <= min(m, n))
        let l = min(rank + settings.oversampling, min(m, n))
        guard let wp = w.baseAddress, l > 0 else { return try exact(w, m: m, n: n, rank: rank) }
        // Every tall factor is kept transposed (row-major [l, ·]), which is the
        // column-major [·, l] layout LAPACK's QR wants.
        var random = SeededRandom(seed: settings.seed, stream: "randomized-svd")
        var omegaT = random.normals(l * n)
        var qT = [Float](repeating: 0, count: l * m)
        // Qᵀ = (W·Ω)ᵀ = Ωᵀ·Wᵀ, then orthonormalise its l columns of length m.
        BLAS.gemm(transA: false, transB: true, m: l, n: m, k: n, alpha: 1, a: omegaT, lda: n, b: wp, ldb: n,
                  beta: 0, c: &qT, ldc: m)
        try LAPACK.orthonormalizeFast(m: m, n: l, a: &qT)
        for _ in 0..<settings.powerIterations {
            // Zᵀ = Qᵀ·W [l, n] → orth; Qᵀ = Zᵀ·Wᵀ [l, m] → orth.
            BLAS.gemm(transA: false, transB: false, m: l, n: n, k: m, alpha: 1, a: qT, lda: m, b: wp, ldb: n,
                      beta: 0, c: &omegaT, ldc: n)
            try LAPACK.orthonormalizeFast(m: n, n: l, a: &omegaT)
            BLAS.gemm(transA: false, transB: true, m: l, n: m, k: n, alpha: 1, a: omegaT, lda: n, b: wp, ldb: n,
                      beta: 0, c: &qT, ldc: m)
            try LAPACK.orthonormalizeFast(m: m, n: l, a: &qT)
        }
        // Small = Qᵀ·W [l, n] row-major = column-major [n, l] = V·Σ·Ubᵀ: LAPACK's
        // "U" (column-major [n, l]) is row-major Vt [l, n], its "Vᵀ" (column-major
        // [l, l]) is row-major Ub [l, l].
        var small = [Float](repeating: 0, count: l * n)
        BLAS.gemm(transA: false, transB: false, m: l, n: n, k: m, alpha: 1, a: qT, lda: m, b: wp, ldb: n,
                  beta: 0, c: &small, ldc: n)
        var s = [Float](repeating: 0, count: l)
        var vtSmall = [Float](repeating: 0, count: l * n)
        var ub = [Float](repeating: 0, count: l * l)
        try LAPACK.svd(m: n, n: l, a: &small, s: &s, u: &vtSmall, vt: &ub)
        // U = Q·Ub[:, :r] [m, r] = (Qᵀ)ᵀ·Ub.
        var u = [Float](repeating: 0, count: m * rank)
        BLAS.gemm(transA: true, transB: false, m: m, n: rank, k: l, alpha: 1, a: qT, lda: m, b: ub, ldb: l,
                  beta: 0, c: &u, ldc: rank)
        var total = 0.0
        for x in w { total += Double(x) * Double(x) }
        return TruncatedSVD(m: m, n: n, rank: rank, u: u, sigma: Array(s[0..<rank]),
                            vt: Array(vtSmall[0..<(rank * n)]), totalEnergy: total)
    }
}
