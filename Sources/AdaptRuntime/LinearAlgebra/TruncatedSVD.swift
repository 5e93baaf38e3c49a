import CBLAS

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

    /// Settings of the randomized SVD: a randomized block Krylov method
    /// (Musco & Musco 2015; Halko, Martinsson & Tropp 2011, §4.4–4.5) with block
    /// size b = r + `oversampling` and `powerIterations` q Krylov steps, each
    /// one application of WᵀW; the basis is re-orthonormalised at every step so
    /// that float32 rounding does not wash out the smaller singular directions.
    public struct Randomized: Sendable, Equatable {
        public var oversampling: Int
        public var powerIterations: Int
        public var seed: UInt64
        public init(oversampling: Int = 16, powerIterations: Int = 2, seed: UInt64 = 0) {
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

    /// The r largest triplets by randomized block Krylov iteration. With
    /// Ω random signs [m, b]: Z₀ = orth(Wᵀ·Ω), then for j < q: Yⱼ = W·Zⱼ,
    /// Zⱼ₊₁ = orth(Wᵀ·Yⱼ ⟂ Z₀…Zⱼ); Y_q = W·Z_q. K = [Z₀ … Z_q] is an orthonormal
    /// basis of the Krylov space span{(WᵀW)ʲ·Wᵀ·Ω}, and W·K = [Y₀ … Y_q] comes
    /// from the products already made, so the 2q + 2 passes over W (each with
    /// b columns) leave a space of dimension b·(q + 1). Rayleigh–Ritz on it:
    /// (W·K)ᵀ(W·K) = V_R·Σ²·V_Rᵀ (float64), U = W·K·V_R·Σ⁻¹, V = K·V_R.
    /// The passes over W, not the small factorisations, are the cost, and block
    /// Krylov reaches a given accuracy in fewer of them than subspace (power)
    /// iteration when σ_r and σ_{r+1} are close (on init-pissa's σ_k = 1/k,
    /// 6 passes of 32 columns give the rank-16 part to 4e-4, where power
    /// iteration needed 10). Deterministic for a seed (OpenBLAS runs
    /// single-threaded, DESIGN §7).
    ///
    /// - Parameters:
    ///   - w: W, row-major `[m, n]`.
    ///   - m: W's rows.
    ///   - n: W's columns.
    ///   - rank: r, the triplets kept.
    ///   - settings: block size, Krylov steps and seed.
    ///   - threads: `nil` (the default) sweeps W's row blocks in order on the
    ///     calling thread (callers that run matrices in parallel, as PiSSA);
    ///     a count runs the blocks in fixed groups (≤ 12, from the shape alone)
    ///     on that many TBB threads, each group summing its own Wᵀ·Y partial and
    ///     the partials added in group order: the same bits for any count.
    public static func randomized(_ w: UnsafeBufferPointer<Float>, m: Int, n: Int, rank: Int,
                                  settings: Randomized, threads: Int? = nil) throws -> TruncatedSVD {
        precondition(w.count == m * n && rank <= min(m, n))
        let smaller = min(m, n)
        let block = min(rank + max(settings.oversampling, 0), smaller)
        guard let wp = w.baseAddress, block > 0, block < smaller else { return try exact(w, m: m, n: n, rank: rank) }
        // The basis cannot outgrow the smaller side.
        let steps = min(max(settings.powerIterations, 0), smaller / block - 1)
        let width = block * (steps + 1)
        BLAS.configure()
        // Every tall factor is stored row by row (row-major [·, width]), so that
        // in each product W is OpenBLAS's right-hand operand, which it packs
        // faster than the left one. In BLAS's column-major terms: W is Wc
        // [n, m] (ld n), the basis K [n, width] is Kc [width, n], W·K is Yc [width, m].
        let (b, mm, nn, l) = (Int32(block), Int32(m), Int32(n), Int32(width))
        var random = SeededRandom(seed: settings.seed, stream: "randomized-svd")
        let omega = random.signs(m * block)                       // Ωc [b, m], Rademacher
        var basis = [Float](repeating: 0, count: n * width)
        var image = [Float](repeating: 0, count: m * width)
        var coefficients = [Float](repeating: 0, count: width * block)
        try basis.withUnsafeMutableBufferPointer { basis in
            try image.withUnsafeMutableBufferPointer { image in
                let k = basis.baseAddress!, y = image.baseAddress!
                // W is swept in blocks of `rows` rows, so that each GEMM has
                // M·N·K ≤ 10⁶: OpenBLAS (0.3.21, SkylakeX) then takes its
                // small-matrix kernels, which read W in place instead of packing
                // it first, and a block stays in cache between the two products
                // of a Krylov step. Measured on 1024² with b = 32: W·Z then Wᵀ·Y
                // in 1.08 ms instead of 1.37 ms as two whole-matrix GEMMs.
                let rows = max(1_000_000 / max(block * n, 1), 1)
                let step = rows >= 8 ? rows : m
                let firsts = Array(stride(from: 0, to: m, by: step))
                // Grouped sweeps: group g sums its blocks' Wᵀ-side products into its
                // own partial Zc_g [b, n] (ld b), the partials then added in order.
                let groups = threads == nil ? 1 : min(firsts.count, FixedBlocks.maximumCount)
                let perGroup = (firsts.count + groups - 1) / groups
                var partials = [Float](repeating: 0, count: groups > 1 ? groups * block * n : 0)
                /// body(first, count, target, ld, beta) for every row block; the
                /// Wᵀ-side product of the block goes to `target` (ld) with `beta`,
                /// and the sum of all blocks' ends in `result` when `accumulating`.
                func sweep(into result: UnsafeMutablePointer<Float>, accumulating: Bool = true,
                           _ body: (_ first: Int, _ count: Int, _ target: UnsafeMutablePointer<Float>, _ ld: Int32, _ beta: Float) -> Void) {
                    guard groups > 1 else {
                        for first in firsts { body(first, min(step, m - first), result, l, first == 0 ? 0 : 1) }
                        return
                    }
                    partials.withUnsafeMutableBufferPointer { partials in
                        Parallel.forEach(groups, threads: threads!) { range in
                            for g in range {
                                let target = partials.baseAddress! + g * block * n
                                for (i, first) in firsts.enumerated() where i / perGroup == g {
                                    body(first, min(step, m - first), target, b, i % perGroup == 0 ? 0 : 1)
                                }
                            }
                        }
                        guard accumulating else { return }
                        for column in 0..<n {
                            for row in 0..<block {
                                var sum: Float = 0
                                for g in 0..<groups { sum += partials[g * block * n + column * block + row] }
                                result[column * width + row] = sum
                            }
                        }
                    }
                }
                // Z₀ = orth(Wᵀ·Ω): Zc₀ [b, n] = Σ over row blocks of Ωc[:, block]·Wc[:, block]ᵀ.
                omega.withUnsafeBufferPointer { omega in
                    sweep(into: k) { first, count, target, ld, beta in
                        cblas_sgemm(CblasColMajor, CblasNoTrans, CblasTrans, b, nn, Int32(count), 1,
                                    omega.baseAddress! + first * block, b, wp + first * n, nn, beta, target, ld)
                    }
                }
                try LAPACK.orthonormalizeRows(m: n, n: block, a: k, lda: width)
                for j in 0...steps {
                    let z = k + j * block, yj = y + j * block
                    let next = z + block
                    // Yⱼ = W·Zⱼ (Ycⱼ [b, m] = Zcⱼ·Wc) and, but for the last step, Wᵀ·Yⱼ
                    // (Zc = Ycⱼ·Wcᵀ) block by block in the same sweep.
                    // The last step makes Y only (no Wᵀ·Y, and `next` is past the basis).
                    sweep(into: next, accumulating: j < steps) { first, count, target, ld, beta in
                        let yBlock = yj + first * width, wBlock = wp + first * n
                        cblas_sgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, b, Int32(count), nn, 1, z, l, wBlock, nn,
                                    0, yBlock, l)
                        if j < steps {
                            cblas_sgemm(CblasColMajor, CblasNoTrans, CblasTrans, b, nn, Int32(count), 1, yBlock, l, wBlock, nn,
                                        beta, target, ld)
                        }
                    }
                    guard j < steps else { break }
                    // Zⱼ₊₁: made orthogonal to Z₀…Zⱼ, then orthonormal; twice ("twice is enough").
                    let previous = Int32((j + 1) * block)
                    try coefficients.withUnsafeMutableBufferPointer { c in
                        for _ in 0..<2 {
                            // C [J, b] = Kc_prev·Zcᵀ; Zc −= Cᵀ·Kc_prev.
                            cblas_sgemm(CblasColMajor, CblasNoTrans, CblasTrans, previous, b, nn, 1, k, l, next, l,
                                        0, c.baseAddress!, previous)
                            cblas_sgemm(CblasColMajor, CblasTrans, CblasNoTrans, b, nn, previous, -1, c.baseAddress!,
                                        previous, k, l, 1, next, l)
                            try LAPACK.orthonormalizeRows(m: n, n: block, a: next, lda: width)
                        }
                    }
                }
            }
        }
        // Rayleigh–Ritz in float64 on the small Gram matrix of W·K: (W·K)ᵀ(W·K) =
        // V_R·Σ²·V_Rᵀ, so W·K·Kᵀ = (W·K·V_R·Σ⁻¹)·Σ·(K·V_R)ᵀ. Squaring costs
        // nothing that matters in float64 (σ_j/σ_1 down to 1e-7 stay resolved),
        // and it needs no QR of the tall W·K.
        let y = image.map(Double.init)                           // Yc [width, m]
        var gram = [Double](repeating: 0, count: width * width)
        cblas_dsyrk(CblasColMajor, CblasUpper, CblasNoTrans, l, mm, 1, y, l, 0, &gram, l)
        var eigenvalues = [Double](repeating: 0, count: width)
        let info = LAPACKE_dsyevd(LAPACK_COL_MAJOR, CChar(UInt8(ascii: "V")), CChar(UInt8(ascii: "U")), l, &gram, l,
                                  &eigenvalues)
        guard info == 0 else { throw LAPACKError(routine: "dsyevd", info: Int(info)) }
        // Eigenvalues ascend: the top r, largest first, as columns of V_R [width, r].
        var ritz = [Double](repeating: 0, count: width * rank)
        var sigma = [Float](repeating: 0, count: rank)
        for j in 0..<rank {
            let source = width - 1 - j
            sigma[j] = Float(max(eigenvalues[source], 0).squareRoot())
            for i in 0..<width { ritz[j * width + i] = gram[source * width + i] }
        }
        // Row-major U [m, r] is column-major [r, m] = (V_Rᵀ·Yc) scaled by 1/σ.
        var product = [Double](repeating: 0, count: rank * m)
        cblas_dgemm(CblasColMajor, CblasTrans, CblasNoTrans, Int32(rank), mm, l, 1, ritz, l, y, l, 0, &product, Int32(rank))
        var u = [Float](repeating: 0, count: m * rank)
        for j in 0..<rank {
            let root = max(eigenvalues[width - 1 - j], 0).squareRoot()
            // A zero singular value (W of lower rank) leaves its column zero, not NaN.
            let scale = root > 0 ? 1 / root : 0
            for i in 0..<m { u[i * rank + j] = Float(product[i * rank + j] * scale) }
        }
        // Row-major Vt [r, n] is column-major V [n, r] = K·V_R = Kcᵀ·V_R.
        let ritzFloat = ritz.map(Float.init)
        var vt = [Float](repeating: 0, count: rank * n)
        cblas_sgemm(CblasColMajor, CblasTrans, CblasNoTrans, nn, Int32(rank), l, 1, basis, l, ritzFloat, l, 0, &vt, nn)
        let total = cblas_dsdot(Int32(m * n), wp, 1, wp, 1)
        return TruncatedSVD(m: m, n: n, rank: rank, u: u, sigma: sigma, vt: vt, totalEnergy: total)
    }
}
