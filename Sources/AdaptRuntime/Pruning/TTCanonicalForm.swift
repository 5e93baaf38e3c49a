/// One mode of a tensor-train adapter's delta tensor, in the train's `order`
/// (DESIGN §2): what it indexes and its size. `factor` orders the factors of a
/// factorised `out`/`in` (row-major: factor 0 most significant); 0 otherwise.
public struct TTMode: Hashable, Sendable {
    public enum Kind: Sendable, Hashable { case layer, module, out, `in` }
    public var kind: Kind
    public var factor: Int
    public var size: Int

    public init(_ kind: Kind, size: Int, factor: Int = 0) {
        self.kind = kind
        self.size = size
        self.factor = factor
    }

    /// The modes the calibration Gram acts on: `Σ xᵀx` is per (layer, module) on `in`.
    public var isWeighted: Bool { kind != .out }
}

/// A tensor train in float64: cores `G_k` `[r_{k-1}, n_k, r_k]` row-major,
/// `ranks` = `[r_0 = 1, r_1, …, r_N = 1]`, so
/// `D[j_1 … j_N] = G_1[:, j_1, :] ⋯ G_N[:, j_N, :]` (DESIGN §2).
public struct TensorTrain: Sendable {
    public var sizes: [Int]
    public var ranks: [Int]
    public var cores: [[Double]]

    public init(cores: [[Double]], sizes: [Int], ranks: [Int]) {
        precondition(ranks.count == sizes.count + 1 && ranks.first == 1 && ranks.last == 1, "TensorTrain: ranks must be [1, …, 1]")
        for k in sizes.indices {
            precondition(cores[k].count == ranks[k] * sizes[k] * ranks[k + 1], "TensorTrain: core \(k) does not match its shape")
        }
        self.sizes = sizes
        self.ranks = ranks
        self.cores = cores
    }

    public init(cores: [[Float]], sizes: [Int], ranks: [Int]) {
        self.init(cores: cores.map { $0.map(Double.init) }, sizes: sizes, ranks: ranks)
    }

    public var count: Int { sizes.count }
    /// The N − 1 inner bond ranks r_1 … r_{N−1}.
    public var bondRanks: [Int] { Array(ranks.dropFirst().dropLast()) }

    /// The product of cores `range` as a matrix `[r_{lo} · ∏ n, r_{hi}]`
    /// (row-major over r_{lo}, then the modes in order, then r_{hi}).
    public func product(_ range: Range<Int>) -> [Double] {
        precondition(!range.isEmpty)
        var result = cores[range.lowerBound]
        var rows = ranks[range.lowerBound] * sizes[range.lowerBound]
        for k in range.dropFirst() {
            result = DenseLinearAlgebra.multiply(result, cores[k], m: rows, n: sizes[k] * ranks[k + 1], k: ranks[k])
            rows *= sizes[k]
        }
        return result
    }

    /// The full tensor, row-major over the modes in order.
    public func dense() -> [Double] { product(0..<count) }

    /// The train with mode k fixed at index j: core k becomes `core[:, j, :]` (size 1).
    /// - Parameters:
    ///   - k: the mode.
    ///   - j: its index kept.
    public func slice(mode k: Int, at j: Int) -> TensorTrain {
        let (r0, n, r1) = (ranks[k], sizes[k], ranks[k + 1])
        var s: [Double] = []
        s.reserveCapacity(r0 * r1)
        for a in 0..<r0 { s += cores[k][((a * n + j) * r1)..<((a * n + j + 1) * r1)] }
        var t = self
        t.cores[k] = s
        t.sizes[k] = 1
        return t
    }

    /// The same tensor with its modes in reverse order: core k of the result is
    /// core N−1−k with its bonds swapped, so bond k of the result is bond N−k.
    public func reversed() -> TensorTrain {
        let n = count
        let newCores = (0..<n).map { k -> [Double] in
            let old = n - 1 - k, (r0, size, r1) = (ranks[old], sizes[old], ranks[old + 1])
            var core = [Double](repeating: 0, count: r0 * size * r1)
            for a in 0..<r0 { for j in 0..<size { for b in 0..<r1 { core[(b * size + j) * r0 + a] = cores[old][(a * size + j) * r1 + b] } } }
            return core
        }
        return TensorTrain(cores: newCores, sizes: sizes.reversed(), ranks: ranks.reversed())
    }

    /// `Σ_{j_0…j_{k-1}} (G_0⋯G_{k-1})ᵀ(G'_0⋯G'_{k-1})`: the `[r_k, r'_k]` left
    /// environment of this train and `other` (same sizes) over cores
    /// `start..<k`, starting from `environment` `[r_start, r'_start]` (`[1]` at 0).
    /// With `other` = self, the Gram of the left part's columns.
    /// - Parameters:
    ///   - other: the second train, of the same sizes.
    ///   - k: the bond the environment ends at.
    ///   - environment: the environment at bond `start`.
    ///   - start: the bond it starts from.
    public func leftEnvironment(with other: TensorTrain, upTo k: Int, from environment: [Double] = [1], at start: Int = 0) -> [Double] {
        var e = environment
        for j in start..<k {
            // e' = Σ_n G[:, n, :]ᵀ · e · G'[:, n, :]
            let x = DenseLinearAlgebra.multiply(e, other.cores[j], m: ranks[j], n: sizes[j] * other.ranks[j + 1], k: other.ranks[j])
            e = DenseLinearAlgebra.multiply(cores[j], x, m: ranks[j + 1], n: other.ranks[j + 1], k: ranks[j] * sizes[j], transA: true)
        }
        return e
    }

    /// The `[r_k, r'_k]` right environment over cores `k..<end`, starting from
    /// `environment` `[r_end, r'_end]` (`[1]` at N): with `other` = self, the
    /// Gram of the right part's rows.
    /// - Parameters:
    ///   - other: the second train, of the same sizes.
    ///   - k: the bond the environment ends at.
    ///   - environment: the environment at bond `end`.
    ///   - end: the bond it starts from (N when nil).
    public func rightEnvironment(with other: TensorTrain, downTo k: Int, from environment: [Double] = [1], at end: Int? = nil) -> [Double] {
        var e = environment
        var j = (end ?? count) - 1
        while j >= k {
            // e' = Σ_n G[:, n, :] · e · G'[:, n, :]ᵀ
            let x = DenseLinearAlgebra.multiply(cores[j], e, m: ranks[j] * sizes[j], n: other.ranks[j + 1], k: ranks[j + 1])
            e = DenseLinearAlgebra.multiply(x, other.cores[j], m: ranks[j], n: other.ranks[j], k: sizes[j] * other.ranks[j + 1], transB: true)
            j -= 1
        }
        return e
    }

    /// Inserts the matrix `v` `[r_k, r']` at bond k (between cores k−1 and k) as
    /// `v·vᵀ`: core k−1 ← core k−1 · v, core k ← vᵀ · core k. With v's columns
    /// orthonormal this projects the bond onto their span; r_k becomes r'.
    public mutating func project(bond k: Int, onto v: [Double], columns: Int) {
        let r = ranks[k]
        precondition(v.count == r * columns)
        let leftRows = ranks[k - 1] * sizes[k - 1], rightColumns = sizes[k] * ranks[k + 1]
        cores[k - 1] = DenseLinearAlgebra.multiply(cores[k - 1], v, m: leftRows, n: columns, k: r)
        cores[k] = DenseLinearAlgebra.multiply(v, cores[k], m: columns, n: rightColumns, k: r, transA: true)
        ranks[k] = columns
    }
}

/// Canonical forms of a tensor train (DESIGN §2, gauge): `G_k G_{k+1} =
/// (G_k R⁻¹)(R G_{k+1})` at every bond, so a bond's rank components only mean
/// something once the cores on one side are orthogonal. Left-orthogonal core:
/// its `[r_{k-1}·n_k, r_k]` unfolding has orthonormal columns; right-orthogonal:
/// its `[r_{k-1}, n_k·r_k]` unfolding has orthonormal rows. QR sweeps in float64
/// (Oseledets 2011, §3); the tensor is unchanged, only the gauge moves.
public enum TTCanonicalForm {
    /// Makes cores `0..<k` left-orthogonal, pushing each R into the next core:
    /// afterwards core k (when k < N) carries the rest of the train.
    public static func leftOrthogonalise(_ train: inout TensorTrain, upTo k: Int) {
        for j in 0..<min(k, train.count - 1) {
            let rows = train.ranks[j] * train.sizes[j], r = train.ranks[j + 1]
            let (q, rFactor, kept) = DenseLinearAlgebra.thinQR(train.cores[j], rows: rows, cols: r)
            train.cores[j] = q
            train.cores[j + 1] = DenseLinearAlgebra.multiply(rFactor, train.cores[j + 1], m: kept,
                                                             n: train.sizes[j + 1] * train.ranks[j + 2], k: r)
            train.ranks[j + 1] = kept
        }
    }

    /// Makes cores `k..<N` right-orthogonal (LQ by QR of the transpose),
    /// pushing each L into the previous core: afterwards core k−1 (when k > 0)
    /// carries the rest of the train.
    public static func rightOrthogonalise(_ train: inout TensorTrain, downTo k: Int) {
        var j = train.count - 1
        while j >= max(k, 1) {
            let r = train.ranks[j], columns = train.sizes[j] * train.ranks[j + 1]
            // Core = L·Q with Q orthonormal rows: the transpose's QR, Coreᵀ = Q̃·R̃, L = R̃ᵀ, Q = Q̃ᵀ.
            let (q, rFactor, kept) = DenseLinearAlgebra.thinQR(transpose(train.cores[j], rows: r, cols: columns), rows: columns, cols: r)
            train.cores[j] = transpose(q, rows: columns, cols: kept)
            let leftRows = train.ranks[j - 1] * train.sizes[j - 1]
            train.cores[j - 1] = DenseLinearAlgebra.multiply(train.cores[j - 1], rFactor, m: leftRows, n: kept, k: r, transB: true)
            train.ranks[j] = kept
            j -= 1
        }
    }

    /// Mixed-canonical at bond k: cores before k−1 left-orthogonal, cores from
    /// k on right-orthogonal, core k−1 the orthogonality centre.
    public static func mixed(_ train: inout TensorTrain, centre: Int) {
        leftOrthogonalise(&train, upTo: centre)
        rightOrthogonalise(&train, downTo: centre + 1)
    }

    static func transpose(_ m: [Double], rows: Int, cols: Int) -> [Double] {
        var t = [Double](repeating: 0, count: m.count)
        for i in 0..<rows { for j in 0..<cols { t[j * rows + i] = m[i * cols + j] } }
        return t
    }
}
