import CBLAS

/// An unfolding `[rows, columns]` of a tensor, delivered as column slices so
/// a caller can stream it: the stacked weights of a group, one weight a
/// slice, never held at once (DESIGN §3). Every column belongs to exactly one slice.
public protocol UnfoldingSlices {
    var rows: Int { get }
    var columns: Int { get }
    var sliceCount: Int { get }
    /// Slice `index`: row-major `matrix [rows, width]` and, for each of its
    /// `width` columns, that column's index in the unfolding.
    func slice(_ index: Int) throws -> (matrix: [Double], columnIndex: [Int])
}

/// A tensor held whole, as its first unfolding `[n_1, n_2·…·n_d]` in one slice.
public struct DenseUnfolding: UnfoldingSlices {
    public let tensor: [Double]
    public let rows: Int
    public init(_ tensor: [Double], rows: Int) {
        precondition(rows > 0 && tensor.count % rows == 0)
        self.tensor = tensor
        self.rows = rows
    }
    public var columns: Int { tensor.count / rows }
    public var sliceCount: Int { 1 }
    public func slice(_ index: Int) throws -> (matrix: [Double], columnIndex: [Int]) { (tensor, Array(0..<columns)) }
}

/// TT-SVD (Oseledets 2011, Algorithm 1): sequential truncated SVDs of the
/// unfoldings, left to right over the modes as given. Step k keeps the
/// leading r_k left singular vectors of the remainder `C [r_{k-1}·n_k, rest]`
/// as core k (left-orthogonal) and carries `U_kᵀ·C` on. The first unfolding's
/// Gram matrix is summed slice by slice and its projection scattered slice by
/// slice, so the tensor itself is never held; later remainders are small.
/// With `tolerance ε` each bond keeps the smallest rank whose discarded tail
/// is ≤ ε‖T‖/√(d−1) (capped), so ‖T − T̂‖ ≤ ε‖T‖ (Oseledets, Theorem 2.2).
/// Float64 throughout; each unfolding goes through a Gram matrix (on its
/// smaller side) and `dsyevd`, or the randomized SVD when that is cheaper.
public struct TTSVD: Sendable {
    public enum UnfoldingMethod: String, Sendable { case gram = "Gram/eigh", randomized = "randomized SVD" }

    public struct Bond: Sendable, Equatable {
        /// The rank kept.
        public var rank: Int
        /// The most it could have: the caller's cap, clipped by the unfolding's shape.
        public var cap: Int
        /// ‖discarded tail‖ = (Σ of the dropped σ²)^½ at this bond.
        public var discarded: Double
        public var method: UnfoldingMethod
        /// Seconds this bond's step took (its Gram or randomized SVD and its
        /// projection); 0 where not measured.
        public var seconds: Double = 0
        public var hitCap: Bool { rank == cap }
    }

    public var modeSizes: [Int]
    /// Core k row-major `[ranks[k], n_k, ranks[k+1]]` with ranks[0] = ranks[d] = 1.
    public var cores: [[Double]]
    public var bonds: [Bond]
    /// ‖T‖_F.
    public var norm: Double
    /// ε‖T‖ when a tolerance was given and every bond met its share of it:
    /// the guaranteed bound on ‖T − T̂‖. `nil` without a tolerance, or when a
    /// cap kept some bond from discarding as little as ε‖T‖/√(d−1)
    /// (`overCap` names those).
    public var bound: Double?
    /// Bonds (0-based) whose cap stopped them short of the tolerance.
    public var overCap: [Int] = []

    public var ranks: [Int] { [1] + bonds.map(\.rank) + [1] }
    /// (Σ_k discarded_k²)^½: ‖T − T̂‖ in exact arithmetic (the errors are orthogonal).
    public var error: Double { bonds.reduce(0.0) { $0 + $1.discarded * $1.discarded }.squareRoot() }

    /// TT-SVD of the tensor whose first unfolding `first` streams, modes
    /// `modeSizes`, bond ranks at most `caps` (d − 1 of them).
    public static func decompose(_ first: UnfoldingSlices, modeSizes: [Int], caps: [Int], tolerance: Double? = nil,
                                 randomized: TruncatedSVD.Randomized = TruncatedSVD.Randomized(),
                                 threads: Int = 1,
                                 progress: ((_ done: Int, _ of: Int) -> Void)? = nil) throws -> TTSVD {
        let d = modeSizes.count
        precondition(d >= 1 && caps.count == d - 1 && first.rows == modeSizes[0]
                     && first.rows * first.columns == modeSizes.reduce(1, *), "TT-SVD: shapes do not agree")
        if d == 1 {
            var tensor = [Double](repeating: 0, count: first.rows)
            for s in 0..<first.sliceCount {
                let (matrix, columns) = try first.slice(s)
                if columns.contains(0) { tensor = matrix }
            }
            let norm = tensor.reduce(0.0) { $0 + $1 * $1 }.squareRoot()
            return TTSVD(modeSizes: modeSizes, cores: [tensor], bonds: [], norm: norm, bound: tolerance.map { $0 * norm })
        }

        // Step 1, streamed: G = Σ_slices X·Xᵀ, ‖T‖² = trace G.
        let n1 = first.rows
        var gram = [Double](repeating: 0, count: n1 * n1)
        for s in 0..<first.sliceCount {
            let (matrix, _) = try first.slice(s)
            Float64LinearAlgebra.accumulateRowGram(matrix, rows: n1, width: matrix.count / n1, into: &gram, threads: threads)
            progress?(s + 1, 2 * first.sliceCount)
        }
        let normSquared = (0..<n1).reduce(0.0) { $0 + gram[$1 * n1 + $1] }
        let norm = normSquared.squareRoot()
        // The per-bond budget δ² = ε²‖T‖²/(d − 1).
        let budget = tolerance.map { $0 * $0 * normSquared / Double(d - 1) }
        let eigen = try Float64LinearAlgebra.symmetricEigen(gram, n: n1)
        let cap1 = min(caps[0], n1, first.columns)
        let r1 = rank(eigen.values, cap: cap1, budget: budget)
        var bonds = [Bond(rank: r1, cap: cap1, discarded: tail(eigen.values, kept: r1).squareRoot(),
                          method: .gram)]
        var u1 = [Double](repeating: 0, count: n1 * r1)
        for i in 0..<n1 { for k in 0..<r1 { u1[i * r1 + k] = eigen.vectors[i * n1 + k] } }
        var cores = [u1]
        // The projected remainder U₁ᵀ·T₍₁₎ [r₁, columns], scattered slice by slice.
        var remainder = [Double](repeating: 0, count: r1 * first.columns)
        for s in 0..<first.sliceCount {
            let (matrix, columnIndex) = try first.slice(s)
            let width = columnIndex.count
            var projected = [Double](repeating: 0, count: r1 * width)
            Float64LinearAlgebra.gemm(transA: true, transB: false, m: r1, n: width, k: n1, a: u1, lda: r1,
                                      b: matrix, ldb: width, c: &projected, ldc: width)
            for k in 0..<r1 {
                let row = k * first.columns
                for c in 0..<width { remainder[row + columnIndex[c]] = projected[k * width + c] }
            }
            progress?(first.sliceCount + s + 1, 2 * first.sliceCount)
        }

        // Steps 2 … d−1 on the small remainder [r_{k-1}·n_k, rest].
        var left = r1
        var rest = first.columns
        for k in 1..<(d - 1) {
            let m = left * modeSizes[k]
            rest /= modeSizes[k]
            let cap = min(caps[k], m, rest)
            let step = try truncate(remainder, m: m, n: rest, cap: cap, budget: budget, randomized: randomized)
            bonds.append(Bond(rank: step.rank, cap: cap, discarded: step.discarded, method: step.method))
            cores.append(step.core)
            remainder = step.remainder
            left = step.rank
        }
        cores.append(remainder)
        var train = TTSVD(modeSizes: modeSizes, cores: cores, bonds: bonds, norm: norm, bound: tolerance.map { $0 * norm })
        if let budget {
            // The bound of Oseledets' Theorem 2.2 needs every tail within δ.
            train.overCap = bonds.indices.filter { bonds[$0].discarded * bonds[$0].discarded > budget * (1 + 1e-12) }
            if !train.overCap.isEmpty { train.bound = nil }
        }
        return train
    }

    /// The smallest rank ≥ 1 whose tail is within the budget, at most `cap`;
    /// `cap` without a budget. `values` are σ², largest first.
    static func rank(_ values: [Double], cap: Int, budget: Double?) -> Int {
        guard let budget, cap > 1 else { return max(cap, 1) }
        for r in 1..<cap where tail(values, kept: r) <= budget { return r }
        return cap
    }

    /// Σ of the σ² beyond the first `kept` of a whole spectrum (each
    /// clamped at 0: a Gram's tiny eigenvalues may round negative).
    static func tail(_ values: [Double], kept: Int) -> Double {
        values.dropFirst(kept).reduce(0.0) { $0 + max($1, 0) }
    }

    struct Step {
        var rank: Int
        var discarded: Double
        var method: UnfoldingMethod
        /// Orthonormal columns `[m, rank]`.
        var core: [Double]
        /// `coreᵀ·C` `[rank, n]`.
        var remainder: [Double]
    }

    /// Flops of the two ways to the leading `cap` singular triplets of an
    /// `[m, n]` matrix: a Gram matrix on the smaller side (syrk, then eigh of
    /// its cube), or the randomized block Krylov SVD (2q + 2 passes of b
    /// columns, then the small Rayleigh–Ritz problem).
    static func cheaperMethod(m: Int, n: Int, cap: Int, budget: Double?, randomized: TruncatedSVD.Randomized) -> UnfoldingMethod {
        let small = Double(min(m, n)), large = Double(max(m, n))
        let block = Double(cap + randomized.oversampling)
        guard budget == nil, block < small else { return .gram }
        let gram = small * small * large + 9 * small * small * small
        let passes = Double(2 * randomized.powerIterations + 2)
        let krylov = passes * 2 * block * Double(m) * Double(n) + 4 * large * pow2(block * Double(randomized.powerIterations + 1))
        return krylov < gram ? .randomized : .gram
    }

    private static func pow2(_ x: Double) -> Double { x * x }

    /// One truncated SVD of the row-major remainder `c [m, n]`.
    static func truncate(_ c: [Double], m: Int, n: Int, cap: Int, budget: Double?,
                         randomized: TruncatedSVD.Randomized) throws -> Step {
        let total = c.reduce(0.0) { $0 + $1 * $1 }
        switch cheaperMethod(m: m, n: n, cap: cap, budget: budget, randomized: randomized) {
        case .randomized:
            let floats = c.map(Float.init)
            let svd = try floats.withUnsafeBufferPointer {
                try TruncatedSVD.randomized($0, m: m, n: n, rank: cap, settings: randomized)
            }
            // U [m, cap] orthonormal; the remainder Uᵀ·C recomputed in float64.
            let core = svd.u.map(Double.init)
            var remainder = [Double](repeating: 0, count: cap * n)
            Float64LinearAlgebra.gemm(transA: true, transB: false, m: cap, n: n, k: m, a: core, lda: cap,
                                      b: c, ldb: n, c: &remainder, ldc: n)
            let kept = remainder.reduce(0.0) { $0 + $1 * $1 }
            return Step(rank: cap, discarded: max(0, total - kept).squareRoot(), method: .randomized,
                        core: core, remainder: remainder)
        case .gram where m <= n:
            // G = C·Cᵀ: its leading eigenvectors are the left singular vectors.
            var gram = [Double](repeating: 0, count: m * m)
            Float64LinearAlgebra.accumulateRowGram(c, rows: m, width: n, into: &gram)
            let eigen = try Float64LinearAlgebra.symmetricEigen(gram, n: m)
            let r = rank(eigen.values, cap: cap, budget: budget)
            var core = [Double](repeating: 0, count: m * r)
            for i in 0..<m { for k in 0..<r { core[i * r + k] = eigen.vectors[i * m + k] } }
            var remainder = [Double](repeating: 0, count: r * n)
            Float64LinearAlgebra.gemm(transA: true, transB: false, m: r, n: n, k: m, a: core, lda: r,
                                      b: c, ldb: n, c: &remainder, ldc: n)
            return Step(rank: r, discarded: tail(eigen.values, kept: r).squareRoot(), method: .gram,
                        core: core, remainder: remainder)
        case .gram:
            // G = Cᵀ·C gives the right singular vectors V_r; C·V_r = Q·R
            // orthonormalises the core without dividing by small σ, and
            // C·V_r·V_rᵀ = Q·(R·V_rᵀ) is the same projection.
            var gram = [Double](repeating: 0, count: n * n)
            Float64LinearAlgebra.columnGram(c, rows: m, width: n, into: &gram)
            let eigen = try Float64LinearAlgebra.symmetricEigen(gram, n: n)
            let r = rank(eigen.values, cap: cap, budget: budget)
            var v = [Double](repeating: 0, count: n * r)
            for i in 0..<n { for k in 0..<r { v[i * r + k] = eigen.vectors[i * n + k] } }
            var cv = [Double](repeating: 0, count: m * r)
            Float64LinearAlgebra.gemm(transA: false, transB: false, m: m, n: r, k: n, a: c, lda: n,
                                      b: v, ldb: r, c: &cv, ldc: r)
            let (q, rFactor) = try Float64LinearAlgebra.qr(cv, m: m, n: r)
            var remainder = [Double](repeating: 0, count: r * n)
            Float64LinearAlgebra.gemm(transA: false, transB: true, m: r, n: n, k: r, a: rFactor, lda: r,
                                      b: v, ldb: r, c: &remainder, ldc: n)
            return Step(rank: r, discarded: tail(eigen.values, kept: r).squareRoot(), method: .gram,
                        core: q, remainder: remainder)
        }
    }

    /// The cores of the same train read in reverse mode order: core k of the
    /// result is core d−1−k with its two bond axes swapped. A right-to-left
    /// sweep is a left-to-right sweep of the reversed tensor, turned back by this.
    public func reversed() -> TTSVD {
        let ranks = self.ranks
        var result = self
        result.modeSizes = modeSizes.reversed()
        result.bonds = bonds.reversed()
        result.overCap = overCap.map { bonds.count - 1 - $0 }.sorted()
        result.cores = (0..<cores.count).reversed().map { k in
            let (a, n, b) = (ranks[k], modeSizes[k], ranks[k + 1])
            var swapped = [Double](repeating: 0, count: a * n * b)
            for i in 0..<a { for j in 0..<n { for l in 0..<b { swapped[(l * n + j) * a + i] = cores[k][(i * n + j) * b + l] } } }
            return swapped
        }
        return result
    }

    /// The full tensor the train represents (row-major over `modeSizes`):
    /// for tests and small checks, never on the init path.
    public func full() -> [Double] {
        let ranks = self.ranks
        var partial = [Double](repeating: 1, count: 1)  // [prefix, r_k]
        var prefix = 1
        for (k, core) in cores.enumerated() {
            let (a, n, b) = (ranks[k], modeSizes[k], ranks[k + 1])
            var next = [Double](repeating: 0, count: prefix * n * b)
            Float64LinearAlgebra.gemm(transA: false, transB: false, m: prefix, n: n * b, k: a, a: partial, lda: a,
                                      b: core, ldb: n * b, c: &next, ldc: n * b)
            partial = next
            prefix *= n
        }
        return partial
    }
}
