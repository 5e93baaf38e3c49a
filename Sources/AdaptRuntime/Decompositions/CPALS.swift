import CBLAS
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// CP decomposition of a dense tensor X [n_1, …, n_N] (row-major) by
/// alternating least squares (Carroll & Chang 1970; Harshman 1970; Kolda &
/// Bader 2009, §3.4): X ≈ Σ_c λ_c · F_1[:, c] ∘ ⋯ ∘ F_N[:, c], F_k [n_k, R].
///
/// Each sweep updates the modes in order; mode k solves its least-squares
/// problem exactly through the normal equations
///   F̃_k · V_k = M_k,   V_k = ⊛_{j≠k} F_jᵀF_j (R × R, Hadamard product),
///   M_k = X₍ₖ₎ · (⊙_{j≠k} F_j)  (the MTTKRP),
/// solved by Cholesky (LAPACK `dposv`; the pseudo-inverse where V_k is
/// singular), then normalises F̃_k's columns into F_k and λ. The residual can
/// only shrink, so the fit 1 − ‖X − X̂‖/‖X‖ never decreases.
///
/// The MTTKRP never forms a Khatri–Rao product: X is multiplied by one
/// factor with a GEMM (float32 X read in float64 tiles), and the other modes
/// are then contracted column by column on the much smaller result. The
/// product with the largest mode z, T = X ×_z F_zᵀ, is kept and serves every
/// mode but z until F_z changes, so a sweep reads X twice, not N times.
///
/// The start (DESIGN §3) is the HOSVD's: each F_k the leading min(R, n_k) left
/// singular vectors of X₍ₖ₎, padded with seeded random columns where R > n_k.
public enum CPALS {
    public struct Settings: Sendable, Equatable {
        public var rank: Int
        /// At most this many sweeps.
        public var iterations: Int
        /// Stop when the fit changes by less than this from one sweep to the next.
        public var tolerance: Double
        /// Seeds the start's padding columns (the only randomness).
        public var seed: UInt64

        public init(rank: Int, iterations: Int = 100, tolerance: Double = 1e-6, seed: UInt64 = 0) {
            self.rank = rank
            self.iterations = iterations
            self.tolerance = tolerance
            self.seed = seed
        }
    }

    public struct Decomposition: Sendable {
        public var shape: [Int]
        public var rank: Int
        /// λ_c ≥ 0.
        public var weights: [Double]
        /// F_k row-major [n_k, R], columns of unit norm (or zero).
        public var factors: [[Double]]
        /// ‖X‖²_F.
        public var squaredNorm: Double
        /// 1 − ‖X − X̂‖/‖X‖ after each sweep.
        public var fits: [Double]

        public var fit: Double { fits.last ?? 0 }
        public var sweeps: Int { fits.count }
        public var relativeError: Double { 1 - fit }

        /// ‖X̂‖²/‖X‖² = Σ_{c,c'} λ_c λ_c' ∏_k (F_kᵀF_k)[c, c'] / ‖X‖².
        public var capturedEnergy: Double {
            guard squaredNorm > 0 else { return 1 }
            var product = [Double](repeating: 1, count: rank * rank)
            for factor in factors {
                let gram = CPALS.gram(factor, rank: rank)
                for i in product.indices { product[i] *= gram[i] }
            }
            var sum = 0.0
            for c in 0..<rank { for d in 0..<rank { sum += weights[c] * weights[d] * product[c * rank + d] } }
            return sum / squaredNorm
        }

        /// The factors with λ folded back in: column c of every factor scaled
        /// by (λ_c/s)^(1/N), so that s·Σ_c ∏_k F_k[·, c] = X̂ with the columns
        /// of one component equally long (none of them carries the scale alone).
        public func balancedFactors(scale: Double = 1) -> [[Double]] {
            precondition(scale > 0)
            let root = weights.map { $0 > 0 ? pow($0 / scale, 1 / Double(factors.count)) : 0 }
            return factors.map { factor in
                var scaled = factor
                for i in scaled.indices { scaled[i] *= root[i % rank] }
                return scaled
            }
        }

        /// X̂ row-major over `shape`: the Khatri–Rao product of the first N − 1
        /// factors (λ folded into it) times F_Nᵀ.
        public func reconstruction() -> [Double] {
            var rows = weights, count = 1
            for factor in factors.dropLast() {
                let n = factor.count / rank
                var next = [Double](repeating: 0, count: count * n * rank)
                for p in 0..<count {
                    for i in 0..<n {
                        for c in 0..<rank { next[(p * n + i) * rank + c] = rows[p * rank + c] * factor[i * rank + c] }
                    }
                }
                rows = next
                count *= n
            }
            let last = factors.last!, n = last.count / rank
            var result = [Double](repeating: 0, count: count * n)
            BLAS.configure()
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(count), Int32(n), Int32(rank), 1, rows,
                        Int32(rank), last, Int32(rank), 0, &result, Int32(n))
            return result
        }
    }

    /// The HOSVD start: F_k [n_k, R] row-major.
    public static func start(_ x: UnsafeBufferPointer<Float>, shape: [Int], rank: Int, seed: UInt64,
                             threads: Int = 0) throws -> [[Double]] {
        try start(DenseTensor(.float(x.baseAddress!), shape: checked(x.count, shape, rank)), rank: rank, seed: seed,
                  threads: threads)
    }

    /// CP-ALS from `start` (default: the HOSVD start for `settings.seed`).
    public static func decompose(_ x: UnsafeBufferPointer<Float>, shape: [Int], settings: Settings,
                                 start: [[Double]]? = nil, threads: Int = 0) throws -> Decomposition {
        let tensor = DenseTensor(.float(x.baseAddress!), shape: checked(x.count, shape, settings.rank))
        let initial = try start ?? Self.start(tensor, rank: settings.rank, seed: settings.seed, threads: threads)
        precondition(initial.count == shape.count && zip(initial, shape).allSatisfy { $0.count == $1 * settings.rank },
                     "CP-ALS: the start does not have the tensor's modes")
        return try als(tensor, rank: settings.rank, start: initial, iterations: settings.iterations,
                       tolerance: settings.tolerance, threads: threads)
    }

    static func start(_ x: DenseTensor, rank: Int, seed: UInt64, threads: Int) throws -> [[Double]] {
        try x.shape.indices.map { k in
            let n = x.shape[k], kept = min(rank, n)
            let vectors = try SymmetricEigen.leading(x.gram(mode: k, threads: threads), n: n, count: kept).vectors
            var factor = [Double](repeating: 0, count: n * rank)
            var random = SeededRandom(seed: seed, stream: "cp-als.start.\(k)")
            let padding = random.normals(n * (rank - kept))
            for i in 0..<n {
                for c in 0..<kept { factor[i * rank + c] = vectors[i * kept + c] }
                // Columns of about unit norm, like the singular vectors beside them.
                for c in kept..<rank { factor[i * rank + c] = Double(padding[i * (rank - kept) + c - kept]) / Double(n).squareRoot() }
            }
            return factor
        }
    }

    static func als(_ x: DenseTensor, rank: Int, start: [[Double]], iterations: Int, tolerance: Double,
                    threads: Int) throws -> Decomposition {
        let shape = x.shape, order = shape.count
        // z: the largest mode, whose product with X is kept; y: the next largest, for mode z's own MTTKRP.
        let bySize = shape.indices.sorted { shape[$0] != shape[$1] ? shape[$0] > shape[$1] : $0 < $1 }
        let z = bySize[0], y = bySize[1]
        var factors = start
        var grams = factors.map { gram($0, rank: rank) }
        var weights = [Double](repeating: 1, count: rank)
        let squaredNorm = x.squaredNorm(threads: threads)
        func product(_ mode: Int) -> [Double] {
            x.modeProduct(mode: mode, factors[mode], rows: shape[mode], columns: rank, transposed: true, threads: threads).values
        }
        var kept = product(z)
        var fits: [Double] = []
        for sweep in 0..<max(iterations, 0) {
            var fit = 0.0
            for k in 0..<order {
                let contracted = k == z ? y : z
                let m = mttkrp(k == z ? product(y) : kept, shape: shape, contracted: contracted, keep: k, factors: factors,
                               rank: rank)
                var v = [Double](repeating: 1, count: rank * rank)
                for j in 0..<order where j != k { for i in v.indices { v[i] *= grams[j][i] } }
                let solution = try solve(v, m, rank: rank)
                var factor = solution
                for c in 0..<rank {
                    var norm = 0.0
                    for i in 0..<shape[k] { norm += factor[i * rank + c] * factor[i * rank + c] }
                    norm = norm.squareRoot()
                    weights[c] = norm
                    let inverse = norm > 0 ? 1 / norm : 0
                    for i in 0..<shape[k] { factor[i * rank + c] *= inverse }
                }
                factors[k] = factor
                grams[k] = gram(factor, rank: rank)
                if k == z { kept = product(z) }
                if k == order - 1 {
                    // ‖X − X̂‖² = ‖X‖² − 2⟨M, F̃⟩ + Σ V ⊛ F̃ᵀF̃ for the model after this update.
                    let inner = zip(m, solution).reduce(0) { $0 + $1.0 * $1.1 }
                    let model = zip(v, gram(solution, rank: rank)).reduce(0) { $0 + $1.0 * $1.1 }
                    fit = squaredNorm > 0 ? 1 - (max(squaredNorm - 2 * inner + model, 0) / squaredNorm).squareRoot() : 1
                }
            }
            fits.append(fit)
            if sweep > 0, abs(fit - fits[sweep - 1]) < tolerance { break }
        }
        return Decomposition(shape: shape, rank: rank, weights: weights, factors: factors, squaredNorm: squaredNorm,
                             fits: fits)
    }

    /// M_k [n_k, R] from T = X ×_j F_jᵀ (mode j of X replaced by the R columns):
    /// every other mode a ≠ k contracted column-wise, Σ_i T[…, i, …, c, …]·F_a[i, c],
    /// the largest first.
    static func mttkrp(_ t: [Double], shape: [Int], contracted: Int, keep: Int, factors: [[Double]],
                       rank: Int) -> [Double] {
        // Axis labels: a mode, or -1 for the columns c (in mode `contracted`'s place).
        var labels = shape.indices.map { $0 == contracted ? -1 : $0 }
        var dims = shape
        dims[contracted] = rank
        var values = t
        let reduced = shape.indices.filter { $0 != contracted && $0 != keep }
            .sorted { shape[$0] != shape[$1] ? shape[$0] > shape[$1] : $0 < $1 }
        for mode in reduced {
            let axis = labels.firstIndex(of: mode)!, columns = labels.firstIndex(of: -1)!
            values = contract(values, dims: dims, axis: axis, columnAxis: columns, factor: factors[mode], rank: rank)
            labels.remove(at: axis)
            dims.remove(at: axis)
        }
        // Left: [n_k, R], or [R, n_k] when the columns come first.
        guard labels.first == -1 else { return values }
        let n = dims[1]
        var transposed = [Double](repeating: 0, count: n * rank)
        for c in 0..<rank { for i in 0..<n { transposed[i * rank + c] = values[c * n + i] } }
        return transposed
    }

    /// out[…] = Σ_i T[…, i (at `axis`), …]·F[i, c], c the index at `columnAxis`.
    static func contract(_ t: [Double], dims: [Int], axis: Int, columnAxis: Int, factor: [Double],
                         rank: Int) -> [Double] {
        let before = dims[..<axis].reduce(1, *), m = dims[axis], after = dims[(axis + 1)...].reduce(1, *)
        var out = [Double](repeating: 0, count: before * after)
        t.withUnsafeBufferPointer { t in
            factor.withUnsafeBufferPointer { f in
                out.withUnsafeMutableBufferPointer { out in
                    let t = t.baseAddress!, f = f.baseAddress!, out = out.baseAddress!
                    if columnAxis > axis {
                        // after = b1 · R · b2: F[i, c] is constant over b2.
                        let b2 = dims[(columnAxis + 1)...].reduce(1, *), b1 = after / (rank * b2)
                        for a in 0..<before {
                            for i in 0..<m {
                                let source = t + (a * m + i) * after, target = out + a * after
                                for p in 0..<b1 {
                                    for c in 0..<rank {
                                        let w = f[i * rank + c], offset = (p * rank + c) * b2
                                        for q in 0..<b2 { target[offset + q] += w * source[offset + q] }
                                    }
                                }
                            }
                        }
                    } else {
                        // before = a1 · R · a2: c = (a / a2) mod R.
                        let a2 = dims[(columnAxis + 1)..<axis].reduce(1, *)
                        for a in 0..<before {
                            let c = (a / a2) % rank, target = out + a * after
                            for i in 0..<m {
                                let w = f[i * rank + c], source = t + (a * m + i) * after
                                for q in 0..<after { target[q] += w * source[q] }
                            }
                        }
                    }
                }
            }
        }
        return out
    }

    /// FᵀF [R, R] of a row-major [n, R] factor.
    static func gram(_ factor: [Double], rank: Int) -> [Double] {
        let n = factor.count / rank
        var result = [Double](repeating: 0, count: rank * rank)
        BLAS.configure()
        cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(rank), Int32(rank), Int32(n), 1, factor, Int32(rank),
                    factor, Int32(rank), 0, &result, Int32(rank))
        return result
    }

    /// F̃ [n, R] with F̃·V = M (V symmetric): Cholesky, or where V is not
    /// positive definite (a zero or repeated column) the pseudo-inverse, the
    /// least-squares solution of least norm.
    static func solve(_ v: [Double], _ m: [Double], rank: Int) throws -> [Double] {
        let n = m.count / rank
        // Row-major M [n, R] is column-major Mᵀ [R, n]: V·F̃ᵀ = Mᵀ in place.
        var a = v, b = m
        BLAS.configure()
        let info = LAPACKE_dposv(LAPACK_COL_MAJOR, CChar(UInt8(ascii: "U")), Int32(rank), Int32(n), &a, Int32(rank), &b,
                                 Int32(rank))
        if info == 0 { return b }
        guard info > 0 else { throw LAPACKError(routine: "dposv", info: Int(info)) }
        let (vectors, values) = try SymmetricEigen.leading(v, n: rank, count: rank)
        let cutoff = (values.first ?? 0) * Double(rank) * Double.ulpOfOne
        // F̃ = M·Q·Λ⁺·Qᵀ.
        var projected = [Double](repeating: 0, count: n * rank)
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(n), Int32(rank), Int32(rank), 1, m, Int32(rank),
                    vectors, Int32(rank), 0, &projected, Int32(rank))
        for i in 0..<n { for c in 0..<rank { projected[i * rank + c] *= values[c] > cutoff ? 1 / values[c] : 0 } }
        var result = [Double](repeating: 0, count: n * rank)
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(n), Int32(rank), Int32(rank), 1, projected, Int32(rank),
                    vectors, Int32(rank), 0, &result, Int32(rank))
        return result
    }

    private static func checked(_ count: Int, _ shape: [Int], _ rank: Int) -> [Int] {
        precondition(shape.reduce(1, *) == count && shape.count >= 2 && rank >= 1,
                     "CP-ALS: the tensor does not have the given shape (two modes or more), or the rank is not positive")
        return shape
    }
}
