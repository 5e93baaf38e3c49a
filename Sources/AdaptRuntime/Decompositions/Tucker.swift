/// Tucker decompositions of a dense tensor X [n_1, …, n_N] (row-major):
/// X ≈ G ×₁ U_1 ×₂ ⋯ ×_N U_N, U_k [n_k, r_k] with orthonormal columns, G the
/// core [r_1, …, r_N] (DESIGN §2, §3). A `full` mode (rank nil) has no factor:
/// its core axis is the mode itself.
///
/// - `hosvd` (De Lathauwer, De Moor & Vandewalle 2000): each U_k the r_k
///   leading left singular vectors of the unfolding X₍ₖ₎, taken as the leading
///   eigenvectors of the Gram matrix X₍ₖ₎X₍ₖ₎ᵀ (n_k × n_k, float64, LAPACK
///   `dsyevd`); the core by projection, G = X ×ₖ U_kᵀ over all modes.
/// - `hooi` (De Lathauwer et al. 2000b, higher-order orthogonal iteration):
///   from the HOSVD, each sweep sets every U_k to the leading left singular
///   vectors of Y₍ₖ₎, Y = X ×_{j≠k} U_jᵀ — the exact maximiser of ‖G‖ given
///   the other factors, so the fit never decreases — until the fit changes by
///   less than the tolerance or `sweeps` are done.
///
/// With orthonormal factors and G the projection, ‖X − X̂‖² = ‖X‖² − ‖G‖²:
/// fits cost nothing beyond the core.
public enum Tucker {
    public struct Decomposition: Sendable {
        public var shape: [Int]
        /// Per mode r_k, or nil for a `full` mode.
        public var ranks: [Int?]
        /// Row-major [r_1, …, r_N] (n_k for a full mode).
        public var core: [Double]
        /// U_k row-major [n_k, r_k], orthonormal columns; nil for a full mode.
        public var factors: [[Double]?]
        /// ‖X‖²_F.
        public var squaredNorm: Double
        /// 1 − ‖X − X̂‖/‖X‖ after the HOSVD, then after each HOOI sweep.
        public var fits: [Double]

        public var coreShape: [Int] { zip(shape, ranks).map { $1 ?? $0 } }
        public var fit: Double { fits.last ?? 1 }
        /// HOOI sweeps run (0 for the HOSVD).
        public var sweeps: Int { fits.count - 1 }
        /// ‖X̂‖²/‖X‖² = ‖G‖²/‖X‖².
        public var capturedEnergy: Double {
            squaredNorm == 0 ? 1 : core.reduce(0) { $0 + $1 * $1 } / squaredNorm
        }
        /// ‖X − X̂‖/‖X‖.
        public var relativeError: Double { 1 - fit }

        /// X̂ = G ×ₖ U_k over the modes with a factor, row-major over `shape`.
        public func reconstruction(threads: Int = 0) -> [Double] {
            var values = core, current = coreShape
            // Grow the modes that grow least first: the intermediates stay small.
            for k in Tucker.order(shape: shape, ranks: ranks, skipping: nil).reversed() {
                let rank = ranks[k]!
                (values, current) = DenseTensor.with(values, shape: current) {
                    $0.modeProduct(mode: k, factors[k]!, rows: shape[k], columns: rank, transposed: false, threads: threads)
                }
            }
            return values
        }
    }

    /// HOSVD of the row-major tensor `x` of the given shape; `ranks[k]` nil is
    /// a full mode, otherwise 1 ≤ r_k ≤ n_k.
    public static func hosvd(_ x: UnsafeBufferPointer<Float>, shape: [Int], ranks: [Int?],
                             threads: Int = 0) throws -> Decomposition {
        try hosvd(DenseTensor(.float(x.baseAddress!), shape: checked(x.count, shape, ranks)), ranks: ranks, threads: threads)
    }

    /// HOOI from the HOSVD: at most `sweeps` sweeps, stopping when the fit
    /// changes by less than `tolerance` (DESIGN §3: 5 and 1e-6).
    public static func hooi(_ x: UnsafeBufferPointer<Float>, shape: [Int], ranks: [Int?], sweeps: Int = 5,
                            tolerance: Double = 1e-6, threads: Int = 0) throws -> Decomposition {
        let tensor = DenseTensor(.float(x.baseAddress!), shape: checked(x.count, shape, ranks))
        var result = try hosvd(tensor, ranks: ranks, threads: threads)
        let reduced = ranks.indices.filter { ranks[$0] != nil }
        guard !reduced.isEmpty else { return result }
        for _ in 0..<max(sweeps, 0) {
            var core: [Double] = []
            for k in reduced {
                let rank = ranks[k]!
                // Y = X ×_{j≠k} U_jᵀ; U_k ← the leading left singular vectors of Y₍ₖ₎.
                let (y, yShape) = project(tensor, factors: result.factors, ranks: ranks, skipping: k, threads: threads)
                let factor = try DenseTensor.with(y, shape: yShape) { y in
                    try SymmetricEigen.leading(y.gram(mode: k, threads: threads), n: shape[k], count: rank).vectors
                }
                result.factors[k] = factor
                if k == reduced.last {
                    core = DenseTensor.with(y, shape: yShape) {
                        $0.modeProduct(mode: k, factor, rows: shape[k], columns: rank, transposed: true, threads: threads).values
                    }
                }
            }
            result.core = core
            let fit = Self.fit(core: core, squaredNorm: result.squaredNorm)
            let previous = result.fit
            result.fits.append(fit)
            if abs(fit - previous) < tolerance { break }
        }
        return result
    }

    static func hosvd(_ x: DenseTensor, ranks: [Int?], threads: Int) throws -> Decomposition {
        var factors: [[Double]?] = Array(repeating: nil, count: x.shape.count)
        for (k, rank) in ranks.enumerated() {
            guard let rank else { continue }
            factors[k] = try SymmetricEigen.leading(x.gram(mode: k, threads: threads), n: x.shape[k], count: rank).vectors
        }
        let squaredNorm = x.squaredNorm(threads: threads)
        let core = project(x, factors: factors, ranks: ranks, skipping: nil, threads: threads).values
        return Decomposition(shape: x.shape, ranks: ranks, core: core, factors: factors, squaredNorm: squaredNorm,
                             fits: [fit(core: core, squaredNorm: squaredNorm)])
    }

    /// 1 − √(‖X‖² − ‖G‖²)/‖X‖ (1 for X = 0).
    static func fit(core: [Double], squaredNorm: Double) -> Double {
        guard squaredNorm > 0 else { return 1 }
        let kept = core.reduce(0) { $0 + $1 * $1 }
        return 1 - (max(squaredNorm - kept, 0) / squaredNorm).squareRoot()
    }

    /// X ×_j U_jᵀ over every mode with a factor but `skipping`, in float64.
    static func project(_ x: DenseTensor, factors: [[Double]?], ranks: [Int?], skipping: Int?,
                        threads: Int) -> (values: [Double], shape: [Int]) {
        let modes = order(shape: x.shape, ranks: ranks, skipping: skipping)
        guard let first = modes.first else {
            // Nothing to project: X itself, in float64.
            let values: [Double]
            switch x.values {
            case .float(let p): values = (0..<x.count).map { Double(p[$0]) }
            case .double(let p): values = Array(UnsafeBufferPointer(start: p, count: x.count))
            }
            return (values, x.shape)
        }
        // The first product reads X (float32) once; the rest work on its smaller result.
        var (values, shape) = x.modeProduct(mode: first, factors[first]!, rows: x.shape[first], columns: ranks[first]!,
                                            transposed: true, threads: threads)
        for k in modes.dropFirst() {
            (values, shape) = DenseTensor.with(values, shape: shape) {
                $0.modeProduct(mode: k, factors[k]!, rows: x.shape[k], columns: ranks[k]!, transposed: true, threads: threads)
            }
        }
        return (values, shape)
    }

    /// The modes with a factor (but `skipping`), those that shrink the tensor
    /// most (smallest r_k/n_k) first, ties by mode.
    static func order(shape: [Int], ranks: [Int?], skipping: Int?) -> [Int] {
        ranks.indices.filter { ranks[$0] != nil && $0 != skipping }.sorted {
            let a = ranks[$0]! * shape[$1], b = ranks[$1]! * shape[$0]
            return a != b ? a < b : $0 < $1
        }
    }

    private static func checked(_ count: Int, _ shape: [Int], _ ranks: [Int?]) -> [Int] {
        precondition(shape.reduce(1, *) == count && ranks.count == shape.count && !shape.isEmpty,
                     "Tucker: the tensor does not have the given shape")
        for (n, r) in zip(shape, ranks) { precondition(r.map { $0 >= 1 && $0 <= n } ?? true, "Tucker: rank out of range") }
        return shape
    }
}
