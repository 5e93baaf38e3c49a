import CBLAS
import Dispatch

/// TT-SVD of a float32 tensor held once (the stacked weights as loaded, or a
/// tensor an app has in memory), without a float64 copy of it.
///
/// Precision: the tensor and every remainder stay float32 (their storage is
/// already rounded to float32, ≈ 6e-8 relative); Gram matrices are summed by
/// float32 `ssyrk` over fixed tiles of at most `gramTileDepth` terms and the
/// tiles' partials are added in float64, so no float32 sum runs over more than
/// a few thousand products; the eigendecompositions, QR and the cores are
/// float64. The result matches a float64 TT-SVD of the same tensor to ≈ 1e-5
/// relative (TTSVDTests), and it is bitwise the same for any `threads`: every
/// tile and block is cut from the shape alone and partials are summed in order.
///
/// Each unfolding `[m, n]` takes the cheaper of a Gram matrix on its smaller
/// side and the randomized block Krylov SVD, by `TTSVD.cheaperMethod`.
extension TTSVD {
    /// TT-SVD of the row-major `tensor` over `modeSizes`, left to right,
    /// bond ranks at most `caps` (d − 1 of them).
    ///
    /// - Parameters:
    ///   - tensor: the tensor, row-major over `modeSizes`; read, never copied.
    ///   - modeSizes: its modes, in sweep order.
    ///   - caps: the most each bond may keep (clipped by the unfoldings' shapes).
    ///   - tolerance: ε: each bond keeps the smallest rank whose discarded tail
    ///     is ≤ ε‖T‖/√(d−1) (Gram matrices then, whose spectra give the tails).
    ///   - randomized: the randomized SVD's settings, for the unfoldings where it is cheaper.
    ///   - threads: TBB threads for the Gram matrices and the projections.
    ///   - workspace: where the remainders go; keep one across calls to reuse
    ///     its memory (a fresh large buffer costs its first touch again).
    public static func decompose(_ tensor: UnsafeBufferPointer<Float>, modeSizes: [Int], caps: [Int],
                                 tolerance: Double? = nil,
                                 randomized: TruncatedSVD.Randomized = TruncatedSVD.Randomized(),
                                 threads: Int = 1, workspace: Workspace = Workspace()) throws -> TTSVD {
        let d = modeSizes.count
        precondition(d >= 1 && caps.count == d - 1 && tensor.count == modeSizes.reduce(1, *), "TT-SVD: shapes do not agree")
        if d == 1 {
            return try decompose(DenseUnfolding(tensor.map(Double.init), rows: modeSizes[0]), modeSizes: modeSizes, caps: [],
                                 tolerance: tolerance)
        }
        // ‖T‖² is needed before the first bond is cut only for the budget δ² = ε²‖T‖²/(d − 1).
        let normSquared0: Double? = tolerance == nil ? nil : FloatMatrix.squaredNorm(tensor, threads: threads)
        let budget = tolerance.map { $0 * $0 * normSquared0! / Double(d - 1) }
        var bonds: [Bond] = [], cores: [[Double]] = []
        var normSquared = normSquared0 ?? 0
        var left = 1, rest = tensor.count
        // Remainder k lives in buffer k mod 2 of the workspace; step k reads the other one.
        var input = tensor
        for k in 0..<(d - 1) {
            let m = left * modeSizes[k]
            rest /= modeSizes[k]
            let cap = min(caps[k], m, rest)
            let output = workspace.buffer(k % 2, count: cap * rest)
            let start = DispatchTime.now().uptimeNanoseconds
            let step = try truncate(input, m: m, n: rest, cap: cap, budget: budget, randomized: randomized,
                                    threads: threads, into: output)
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9
            if k == 0 && normSquared0 == nil { normSquared = step.total }
            bonds.append(Bond(rank: step.rank, cap: cap, discarded: step.discarded, method: step.method, seconds: seconds))
            cores.append(step.core)
            input = UnsafeBufferPointer(rebasing: UnsafeBufferPointer(output)[..<(step.rank * rest)])
            left = step.rank
        }
        cores.append(input.map(Double.init))
        let norm = normSquared.squareRoot()
        var train = TTSVD(modeSizes: modeSizes, cores: cores, bonds: bonds, norm: norm, bound: tolerance.map { $0 * norm })
        if let budget {
            train.overCap = bonds.indices.filter { bonds[$0].discarded * bonds[$0].discarded > budget * (1 + 1e-12) }
            if !train.overCap.isEmpty { train.bound = nil }
        }
        return train
    }

    /// Reusable memory for the float32 TT-SVD's remainders: two buffers, each
    /// grown to the largest remainder asked of it and kept (an app or a
    /// benchmark that decomposes repeatedly keeps one and pays each page's
    /// first touch once). Not for concurrent use.
    public final class Workspace {
        private var buffers: [UnsafeMutableBufferPointer<Float>] = []

        public init() {}

        deinit { buffers.forEach { $0.deallocate() } }

        /// Buffer `index` (0 or 1) with room for at least `count` floats.
        func buffer(_ index: Int, count: Int) -> UnsafeMutableBufferPointer<Float> {
            while buffers.count <= index { buffers.append(UnsafeMutableBufferPointer(start: nil, count: 0)) }
            if buffers[index].count < count {
                buffers[index].deallocate()
                buffers[index] = .allocate(capacity: count)
                buffers[index].initialize(repeating: 0)
            }
            return buffers[index]
        }
    }

    struct Float32Step {
        var rank: Int
        var discarded: Double
        var method: UnfoldingMethod
        /// Orthonormal columns `[m, rank]`.
        var core: [Double]
        /// ‖C‖².
        var total: Double
    }

    /// One truncated SVD of the row-major float32 unfolding `c [m, n]`; the
    /// remainder `coreᵀ·C` `[rank, n]` goes to `output` (room for `[cap, n]`).
    static func truncate(_ c: UnsafeBufferPointer<Float>, m: Int, n: Int, cap: Int, budget: Double?,
                         randomized: TruncatedSVD.Randomized, threads: Int,
                         into output: UnsafeMutableBufferPointer<Float>) throws -> Float32Step {
        switch cheaperMethod(m: m, n: n, cap: cap, budget: budget, randomized: randomized) {
        case .randomized:
            let svd = try TruncatedSVD.randomized(c, m: m, n: n, rank: cap, settings: randomized, threads: threads)
            // The remainder Uᵀ·C from U itself (not Σ·Vᵀ), so core·remainder is the projection of C.
            FloatMatrix.projectRows(c, m: m, n: n, onto: svd.u, rank: cap, threads: threads, into: output.baseAddress!)
            let kept = FloatMatrix.squaredNorm(UnsafeBufferPointer(rebasing: UnsafeBufferPointer(output)[..<(cap * n)]), threads: threads)
            return Float32Step(rank: cap, discarded: max(0, svd.totalEnergy - kept).squareRoot(), method: .randomized,
                               core: svd.u.map(Double.init), total: svd.totalEnergy)
        case .gram where m <= n:
            // G = C·Cᵀ: its leading eigenvectors are the left singular vectors.
            let gram = FloatMatrix.gram(c, m: m, n: n, side: .rows, threads: threads)
            let total = (0..<m).reduce(0.0) { $0 + gram[$1 * m + $1] }
            let eigen = try Float64LinearAlgebra.symmetricEigen(gram, n: m)
            let r = rank(eigen.values, cap: cap, budget: budget)
            var core = [Double](repeating: 0, count: m * r)
            for i in 0..<m { for k in 0..<r { core[i * r + k] = eigen.vectors[i * m + k] } }
            FloatMatrix.projectRows(c, m: m, n: n, onto: core.map(Float.init), rank: r, threads: threads, into: output.baseAddress!)
            return Float32Step(rank: r, discarded: tail(eigen.values, kept: r).squareRoot(), method: .gram,
                               core: core, total: total)
        case .gram:
            // G = Cᵀ·C gives V_r; C·V_r = Q·R orthonormalises the core (float64)
            // and R·V_rᵀ is the remainder, as the float64 path does.
            let gram = FloatMatrix.gram(c, m: m, n: n, side: .columns, threads: threads)
            let total = (0..<n).reduce(0.0) { $0 + gram[$1 * n + $1] }
            let eigen = try Float64LinearAlgebra.symmetricEigen(gram, n: n)
            let r = rank(eigen.values, cap: cap, budget: budget)
            var v = [Float](repeating: 0, count: n * r)
            for i in 0..<n { for k in 0..<r { v[i * r + k] = Float(eigen.vectors[i * n + k]) } }
            let cv = FloatMatrix.multiply(c, m: m, n: n, by: v, columns: r, threads: threads)
            let (q, rFactor) = try Float64LinearAlgebra.qr(cv.map(Double.init), m: m, n: r)
            var remainder = [Double](repeating: 0, count: r * n)
            Float64LinearAlgebra.gemm(transA: false, transB: true, m: r, n: n, k: r, a: rFactor, lda: r,
                                      b: v.map(Double.init), ldb: r, c: &remainder, ldc: n)
            for e in 0..<(r * n) { output[e] = Float(remainder[e]) }
            return Float32Step(rank: r, discarded: tail(eigen.values, kept: r).squareRoot(), method: .gram,
                               core: q, total: total)
        }
    }
}

/// Float32 products over a large row-major matrix `c [m, n]` cut into blocks
/// fixed by the shape (never by `threads`), so results are the same bits for
/// any thread count.
enum FloatMatrix {
    /// At most this many products in one float32 Gram sum (one tile's depth).
    static let gramTileDepth = 4096

    enum Side { case rows, columns }

    /// `C·Cᵀ` (`.rows`, `[m, m]`) or `Cᵀ·C` (`.columns`, `[n, n]`) in float64,
    /// both triangles: `ssyrk` over tiles of the summed side (≤ `gramTileDepth`
    /// deep, at least 2¹⁸ entries), each tile's float32 partial added in
    /// float64 to its group's sum; groups (≤ 12, within 32 MB) summed in order.
    static func gram(_ c: UnsafeBufferPointer<Float>, m: Int, n: Int, side: Side, threads: Int) -> [Double] {
        BLAS.configure()
        let size = side == .rows ? m : n, depth = side == .rows ? n : m
        // A few rows: tiles within OpenBLAS's small-matrix bound (M·N·K ≤ 10⁶).
        let small = side == .rows && size * size * 256 <= 1_000_000
        let tileDepth = small ? min(depth, max(256, 1_000_000 / (size * size) / 64 * 64))
                              : min(depth, gramTileDepth, max(64, (1 << 18) / max(size, 1)))
        let tiles = (depth + tileDepth - 1) / tileDepth
        let groups = max(1, min(tiles, FixedBlocks.maximumCount, (1 << 22) / max(size * size, 1)))
        let perGroup = (tiles + groups - 1) / groups
        var partials = [Double](repeating: 0, count: groups * size * size)
        let x = c.baseAddress!
        partials.withUnsafeMutableBufferPointer { partials in
            Parallel.forEach(groups, threads: threads) { range in
                let scratch = UnsafeMutablePointer<Float>.allocate(capacity: size * size)
                defer { scratch.deallocate() }
                for g in range {
                    let sum = partials.baseAddress! + g * size * size
                    for t in (g * perGroup)..<min(tiles, (g + 1) * perGroup) {
                        let first = t * tileDepth, count = min(tileDepth, depth - first)
                        if side == .rows && small {
                            // A thin tile: OpenBLAS's small-matrix GEMM reads it in place
                            // (ssyrk would pack it first); both triangles, the upper one used.
                            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, blasint(m), blasint(m), blasint(count), 1,
                                        x + first, blasint(n), x + first, blasint(n), 0, scratch, blasint(size))
                        } else if side == .rows {
                            // Columns first..<first+count of C: [m, count], ld n.
                            cblas_ssyrk(CblasRowMajor, CblasUpper, CblasNoTrans, blasint(m), blasint(count), 1,
                                        x + first, blasint(n), 0, scratch, blasint(size))
                        } else {
                            // Rows first..<first+count of C: [count, n]; Cᵀ·C.
                            cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, blasint(n), blasint(count), 1,
                                        x + first * n, blasint(n), 0, scratch, blasint(size))
                        }
                        for i in 0..<size {
                            for j in i..<size { sum[i * size + j] += Double(scratch[i * size + j]) }
                        }
                    }
                }
            }
        }
        var gram = [Double](repeating: 0, count: size * size)
        for g in 0..<groups {
            for i in 0..<size { for j in i..<size { gram[i * size + j] += partials[(g * size + i) * size + j] } }
        }
        for i in 0..<size { for j in 0..<i { gram[i * size + j] = gram[j * size + i] } }
        return gram
    }

    /// `result = uᵀ·C` `[rank, n]` for `u [m, rank]` row-major, over fixed column blocks of C.
    static func projectRows(_ c: UnsafeBufferPointer<Float>, m: Int, n: Int, onto u: [Float], rank: Int,
                            threads: Int, into result: UnsafeMutablePointer<Float>) {
        BLAS.configure()
        guard rank > 0 else { return }
        // Blocks within OpenBLAS's small-matrix bound (M·N·K ≤ 10⁶) where C has
        // few rows, so C is read in place instead of packed first (one pass, not two).
        let thin = 1_000_000 / max(rank * m, 1)
        let blocks = thin >= 256 ? FixedBlocks(extent: n, length: thin / 16 * 16)
                                 : FixedBlocks(extent: n, unitWork: 2 * m * rank)
        u.withUnsafeBufferPointer { u in
            Parallel.forEach(blocks.count, threads: threads) { range in
                for b in range {
                    let columns = blocks[b]
                    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, blasint(rank), blasint(columns.count), blasint(m), 1,
                                u.baseAddress!, blasint(rank), c.baseAddress! + columns.lowerBound, blasint(n), 0,
                                result + columns.lowerBound, blasint(n))
                }
            }
        }
    }

    /// `C·v` `[m, columns]` for `v [n, columns]` row-major, over fixed row blocks of C.
    static func multiply(_ c: UnsafeBufferPointer<Float>, m: Int, n: Int, by v: [Float], columns: Int,
                         threads: Int) -> [Float] {
        BLAS.configure()
        var result = [Float](repeating: 0, count: m * columns)
        guard columns > 0 else { return result }
        let blocks = FixedBlocks(extent: m, unitWork: 2 * n * columns)
        v.withUnsafeBufferPointer { v in
            result.withUnsafeMutableBufferPointer { result in
                Parallel.forEach(blocks.count, threads: threads) { range in
                    for b in range {
                        let rows = blocks[b]
                        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, blasint(rows.count), blasint(columns), blasint(n), 1,
                                    c.baseAddress! + rows.lowerBound * n, blasint(n), v.baseAddress!, blasint(columns), 0,
                                    result.baseAddress! + rows.lowerBound * columns, blasint(columns))
                    }
                }
            }
        }
        return result
    }

    /// Σ x² in float64, over fixed blocks summed in order.
    static func squaredNorm(_ x: UnsafeBufferPointer<Float>, threads: Int) -> Double {
        let block = 1 << 16, blocks = (x.count + block - 1) / block
        var partial = [Double](repeating: 0, count: blocks)
        partial.withUnsafeMutableBufferPointer { partial in
            Parallel.forEach(blocks, threads: threads) { range in
                for b in range {
                    let start = b * block, count = min(block, x.count - start)
                    partial[b] = cblas_dsdot(blasint(count), x.baseAddress! + start, 1, x.baseAddress! + start, 1)
                }
            }
        }
        return partial.reduce(0, +)
    }
}
