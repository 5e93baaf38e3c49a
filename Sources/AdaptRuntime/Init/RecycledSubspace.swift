/// Recycling LoRA adapters into one shared subspace (DESIGN §3 `recycle`;
/// EigenLoRAx, Kaushik et al. 2025, generalised as a Tucker-2 of the stacked
/// deltas): T adapters of one pair, `ΔW_t = s_t·B_t·A_t`, are stacked along
/// the task mode into `D[t, out, in]` and decomposed as
///
///     ΔW_t ≈ U · C_t · Vᵀ,    U [out, p], V [in, q] orthonormal, C_t [p, q]
///
/// with U and V the leading left singular vectors of D's out and in
/// unfoldings (HOSVD with the task mode `full`) and `C_t = Uᵀ·ΔW_t·V`.
///
/// The dense ΔW_t is never formed. The out unfolding `[ΔW_1 … ΔW_T]` has
/// Gram `Σ_t ΔW_t·ΔW_tᵀ`; with the thin QR `A_tᵀ = Q_t·R_t` (Q_t orthonormal)
/// that is `Σ_t (s_t·B_t·R_tᵀ)(s_t·B_t·R_tᵀ)ᵀ`, so the unfolding has the
/// left singular vectors and values of the thin `K_out = [s_1·B_1·R_1ᵀ, …]`
/// `[out, Σr]`, found from the eigenpairs of its small `[Σr, Σr]` Gram
/// (`u_k = K·w_k / σ_k`). The in side likewise with `B_t = P_t·S_t`:
/// `K_in = [s_1·A_1ᵀ·S_1ᵀ, …]`. The cores are `(Uᵀ·s_t·B_t)·(A_t·V)`.
/// Cost: O((out + in)·(Σr)² + (Σr)³), not O(T·out·in).
///
/// When the adapters share a subspace of dimensions (p, q), the recycled
/// factors at those ranks reproduce every ΔW_t exactly (up to rounding);
/// at lower ranks `kept` says how much of each one survives.
public enum RecycledSubspace {
    /// One task's LoRA factors for the pair, float64, row-major: B `[out, rank]`,
    /// A `[rank, in]`, and the scale s of `ΔW = s·B·A`.
    public struct TaskFactors: Sendable {
        public var b: [Double]
        public var a: [Double]
        public var rank: Int
        public var scale: Double

        public init(b: [Double], a: [Double], rank: Int, scale: Double = 1) {
            self.b = b
            self.a = a
            self.rank = rank
            self.scale = scale
        }
    }

    public struct Result: Sendable {
        /// `[out, p]`, orthonormal columns (a zero column where the adapters span fewer than p directions).
        public var u: [Double]
        /// `[in, q]`, likewise.
        public var v: [Double]
        /// Per task `C_t [p, q]`; zero for a task without factors (it starts at zero).
        public var cores: [[Double]]
        /// Per task `‖U·C_t·Vᵀ‖² / ‖ΔW_t‖²`, the share of the adapter the shared
        /// subspace keeps; nil for a task without factors or with ΔW_t = 0.
        public var kept: [Double?]
        public var outRank: Int
        public var inRank: Int
    }

    /// - Parameters:
    ///   - tasks: one entry per task; nil for a task with no adapter to recycle.
    ///   - outFeatures: the pair's output width.
    ///   - inFeatures: the pair's input width.
    ///   - p: the shared out subspace's dimension.
    ///   - q: the shared in subspace's dimension.
    public static func decompose(_ tasks: [TaskFactors?], outFeatures: Int, inFeatures: Int,
                                 outRank p: Int, inRank q: Int) throws -> Result {
        let given = tasks.compactMap { $0 }
        for t in given {
            precondition(t.b.count == outFeatures * t.rank && t.a.count == t.rank * inFeatures,
                         "factors must be B [out, rank] and A [rank, in]")
        }
        // K_out = [s·B_t·R_tᵀ], K_in = [s·A_tᵀ·S_tᵀ] (column blocks), from thin QRs of A_tᵀ and B_t.
        var outBlocks: [[Double]] = [], inBlocks: [[Double]] = [], ranks: [Int] = []
        for t in given where t.rank > 0 {
            let r = t.rank
            let aT = transpose(t.a, rows: r, cols: inFeatures)  // [in, r]
            let rA = try triangularFactor(aT, m: inFeatures, n: r)
            let rB = try triangularFactor(t.b, m: outFeatures, n: r)
            outBlocks.append(scaled(product(t.b, transpose(rA, rows: r, cols: r), m: outFeatures, k: r, n: r), t.scale))
            inBlocks.append(scaled(product(aT, transpose(rB, rows: r, cols: r), m: inFeatures, k: r, n: r), t.scale))
            ranks.append(r)
        }
        let u = try leadingLeftVectors(blocks: outBlocks, widths: ranks, rows: outFeatures, count: p)
        let v = try leadingLeftVectors(blocks: inBlocks, widths: ranks, rows: inFeatures, count: q)

        var cores: [[Double]] = [], kept: [Double?] = []
        for task in tasks {
            guard let t = task, t.rank > 0 else {
                cores.append([Double](repeating: 0, count: p * q))
                kept.append(nil)
                continue
            }
            let r = t.rank
            // (Uᵀ·s·B) [p, r] · (A·V) [r, q].
            let ub = scaled(product(transpose(u, rows: outFeatures, cols: p), t.b, m: p, k: outFeatures, n: r), t.scale)
            let av = product(t.a, v, m: r, k: inFeatures, n: q)
            let core = product(ub, av, m: p, k: r, n: q)
            cores.append(core)
            // ‖s·B·A‖² = s²·tr((BᵀB)(AAᵀ)), from the factors.
            let btb = product(transpose(t.b, rows: outFeatures, cols: r), t.b, m: r, k: outFeatures, n: r)
            let aat = product(t.a, transpose(t.a, rows: r, cols: inFeatures), m: r, k: inFeatures, n: r)
            var total = 0.0
            for i in 0..<r { for j in 0..<r { total += btb[i * r + j] * aat[j * r + i] } }
            total *= t.scale * t.scale
            let captured = core.reduce(0) { $0 + $1 * $1 }
            kept.append(total > 0 ? captured / total : nil)
        }
        return Result(u: u, v: v, cores: cores, kept: kept, outRank: p, inRank: q)
    }

    /// The `count` leading left singular vectors of `[block_1 … block_T]` (`[rows, Σ widths]`)
    /// as the columns of `[rows, count]`, from the eigenpairs of its column Gram.
    /// Directions with σ ≤ 1e-6·σ_max (or beyond the blocks' width) are zero
    /// columns: the Gram's eigenvalues carry rounding of about 1e-16·σ_max²,
    /// so below that σ a direction is noise, and it holds < 1e-12 of the energy.
    static func leadingLeftVectors(blocks: [[Double]], widths: [Int], rows: Int, count: Int) throws -> [Double] {
        let width = widths.reduce(0, +)
        var result = [Double](repeating: 0, count: rows * count)
        guard width > 0, count > 0 else { return result }
        var k = [Double](repeating: 0, count: rows * width)
        var column = 0
        for (block, w) in zip(blocks, widths) {
            for i in 0..<rows { for j in 0..<w { k[i * width + column + j] = block[i * w + j] } }
            column += w
        }
        var gram = [Double](repeating: 0, count: width * width)
        k.withUnsafeBufferPointer { kb in
            gram.withUnsafeMutableBufferPointer { Float64LinearAlgebra.columnGram(kb.baseAddress!, rows: rows, width: width, into: $0.baseAddress!) }
        }
        let (values, vectors) = try Float64LinearAlgebra.symmetricEigen(gram, n: width)
        let largest = values.first.map { max($0, 0) } ?? 0
        for c in 0..<min(count, width) {
            let sigmaSquared = values[c]
            guard sigmaSquared > 0, sigmaSquared > 1e-12 * largest else { continue }
            let inverse = 1 / sigmaSquared.squareRoot()
            for i in 0..<rows {
                var s = 0.0
                for j in 0..<width { s += k[i * width + j] * vectors[j * width + c] }
                result[i * count + c] = s * inverse
            }
        }
        return result
    }

    /// An `[n, n]` R with `Rᵀ·R = aᵀ·a` for `a [m, n]`: the R of its thin QR,
    /// or, with more columns than rows (a rank above a side's size), of `a`
    /// stacked on zero rows. Only the Gram matters to the unfoldings above.
    private static func triangularFactor(_ a: [Double], m: Int, n: Int) throws -> [Double] {
        guard m < n else { return try Float64LinearAlgebra.qr(a, m: m, n: n).r }
        let padded = a + [Double](repeating: 0, count: (n - m) * n)
        return try Float64LinearAlgebra.qr(padded, m: n, n: n).r
    }

    static func product(_ a: [Double], _ b: [Double], m: Int, k: Int, n: Int) -> [Double] {
        var c = [Double](repeating: 0, count: m * n)
        guard m > 0, n > 0 else { return c }
        a.withUnsafeBufferPointer { ab in b.withUnsafeBufferPointer { bb in c.withUnsafeMutableBufferPointer { cb in
            Float64LinearAlgebra.gemm(transA: false, transB: false, m: m, n: n, k: k, a: ab.baseAddress!, lda: k,
                                      b: bb.baseAddress!, ldb: n, c: cb.baseAddress!, ldc: n)
        } } }
        return c
    }

    static func transpose(_ a: [Double], rows: Int, cols: Int) -> [Double] {
        var t = [Double](repeating: 0, count: rows * cols)
        for i in 0..<rows { for j in 0..<cols { t[j * rows + i] = a[i * cols + j] } }
        return t
    }

    private static func scaled(_ a: [Double], _ s: Double) -> [Double] { s == 1 ? a : a.map { $0 * s } }
}
