/// Data-weighted Tucker rounding (DESIGN §4): the rank level of the pruner for
/// a Tucker group, and what an app calls to prune one at run time.
///
/// The factors are made orthonormal (the gauge: `U·R` and `R`'s inverse in the
/// core), then the modes are cut one after the other, each on the tensor the
/// earlier cuts left (a sequentially truncated HOSVD, Vannieuwenhoven et al.
/// 2012), each by its data-weighted spectrum:
/// - an `out` mode: the Gram `Σ_{l,m} T₍ₖ₎T₍ₖ₎ᵀ` of the weighted core
///   `T[l,m] = Z[l,m]·S[l,m]` (S the square root of the Gram in the core's in
///   space, `TTCalibration`'s eigen root, round-off negatives clipped). The
///   weighting does not touch the out index, so the eigenvalues are exactly the
///   output energies of the mode's components on the calibration rows and
///   projecting the factor onto the leading ones loses exactly the rest.
/// - an `in` mode: the factor side carries the weighting (the Gram summed over
///   the group's pairs, traced over the other in factors), the core side is
///   orthonormalised (the core's unfolding `C₍ₖ₎ = W·Λ^{1/2}·Yᵀ`) and the cut is
///   a projection on that side. Exact when the group has one pair and `in` is
///   one mode; coupled otherwise.
/// - `layer`, `module`: the core side carries the weighting pooled over the
///   mode (`Σ_l G[l,m]` for the layer mode); coupled.
/// A coupled mode's spectrum only orders its components: the rank it keeps is
/// the smallest whose loss, measured on the calibration rows, stays within
/// 1 − T of the energy before the cut. `full` modes stay full. The group's lost
/// energy is always measured, `E(D − D')` of the input and the stored result.
public enum TuckerRounding {
    /// What became of one mode.
    public struct Mode: Sendable {
        /// nil for a full mode (never cut).
        public var rankBefore: Int?
        public var rankAfter: Int?
        /// The mode's data-weighted spectrum (scale² included), descending.
        public var energies: [Double]
        /// True where `energies` are the components' exact output energies.
        public var exactWeighting: Bool
        /// What this mode's cut lost on the calibration rows (scale² included).
        public var lostEnergy: Double
    }

    public struct Result: Sendable {
        public var core: [Float]
        public var factors: [[Float]?]
        public var ranks: [Int?]
        public var modes: [Mode]
        public var pairEnergies: [Double]
        public var pairLostEnergies: [Double]
        public var unchanged: Bool
        public var totalEnergy: Double { pairEnergies.reduce(0, +) }
        public var lostEnergy: Double { pairLostEnergies.reduce(0, +) }
    }

    /// Rounds the Tucker tensor (`core` row-major over the modes' core sizes,
    /// `factors[k]` `[n_k, r_k]` or nil where full, `modes` in the group's
    /// order) whose ΔW is `scale·D`. `newScale(r)` is the scale for a largest
    /// non-full rank r (alpha is kept): the change is folded into the core.
    /// - Parameters:
    ///   - core: Row-major over the modes' core sizes.
    ///   - factors: U_k `[n_k, r_k]` per mode, nil where the mode is full.
    ///   - modes: The group's modes in its order.
    ///   - calibration: The Gram of each pair's calibration rows.
    ///   - scale: s of ΔW = s·D.
    ///   - newScale: s for a largest non-full rank.
    ///   - options: The threshold and the scope.
    public static func round(core: [Float], factors: [[Float]?], modes: [TTMode], calibration: TTCalibration, scale: Double,
                             newScale: (Int) -> Double = { _ in 1 }, options: TTRounding.Options) -> Result {
        let input = TuckerTensor(core: core, factors: factors, modes: modes)
        let s2 = scale * scale
        let pairEnergies = calibration.pairEnergies(input).map { $0 * s2 }
        let total = pairEnergies.reduce(0, +)
        var chosen = options.globalScope ? globalRanks(input, calibration: calibration, threshold: options.threshold) : nil
        while true {
            var (x, cuts) = sweep(input, calibration: calibration, threshold: options.threshold, ranks: chosen)
            cuts = cuts.map { var c = $0; c.energies = c.energies.map { $0 * s2 }; c.lostEnergy *= s2; return c }
            if x.ranks == input.ranks {
                return Result(core: core, factors: factors, ranks: input.ranks, modes: cuts, pairEnergies: pairEnergies,
                              pairLostEnergies: pairEnergies.map { _ in 0 }, unchanged: true)
            }
            let factor = scale / newScale(x.ranks.compactMap { $0 }.max() ?? 1)
            let storedCore = x.core.map { Float($0 * factor) }
            let storedFactors = x.factors.map { $0?.map { Float($0) } }
            // The stored tensor, scaled back to the input's scale: E(scale·(D − D')).
            var stored = TuckerTensor(core: storedCore, factors: storedFactors, modes: modes)
            stored.core = stored.core.map { $0 / factor }
            let lost = calibration.pairDistances(input, stored).map { $0 * s2 }
            if var ranksNow = chosen, lost.reduce(0, +) > (1 - options.threshold + TTRounding.zeroShare) * total,
               let widen = widenable(cuts, ranksNow) {
                ranksNow[widen] = ranksNow[widen]! + 1
                chosen = ranksNow
                continue
            }
            return Result(core: storedCore, factors: storedFactors, ranks: x.ranks, modes: cuts, pairEnergies: pairEnergies,
                          pairLostEnergies: lost, unchanged: false)
        }
    }

    /// The mode whose first dropped component carries the most energy, if any mode was cut.
    static func widenable(_ cuts: [Mode], _ ranks: [Int?]) -> Int? {
        var best: Int?, bestEnergy = -1.0
        for (k, c) in cuts.enumerated() {
            guard let r = ranks[k], let before = c.rankBefore, r < before, r < c.energies.count else { continue }
            if c.energies[r] > bestEnergy { best = k; bestEnergy = c.energies[r] }
        }
        return best
    }

    /// One pass over the modes in order: each analysed on the current tensor
    /// and cut to `ranks[k]` when given, else by the threshold.
    static func sweep(_ input: TuckerTensor, calibration: TTCalibration, threshold: Double, ranks fixed: [Int?]?)
        -> (TuckerTensor, [Mode]) {
        var x = input
        x.orthonormalise()
        var cuts: [Mode] = []
        for k in x.modes.indices {
            guard x.factors[k] != nil else {
                cuts.append(Mode(rankBefore: nil, rankAfter: nil, energies: [], exactWeighting: true, lostEnergy: 0))
                continue
            }
            let a = analyse(x, mode: k, calibration: calibration)
            let count = a.energies.count
            var keep = fixed.map { min($0[k] ?? count, count) } ?? TTRounding.keptRank(a.energies, threshold: threshold)
            var lost = a.energies.dropFirst(keep).reduce(0, +)
            if !a.exact {
                // As for a coupled TT bond: the pooled rule's rank, widened until the
                // measured loss passes, then bisected to the smallest passing rank.
                let now = calibration.pairEnergies(x).reduce(0, +)
                func loss(_ r: Int) -> Double {
                    r >= x.coreSizes[k] ? 0 : calibration.pairDistances(x, cut(x, mode: k, a, keep: r)).reduce(0, +)
                }
                let budget = (1 - threshold + TTRounding.zeroShare) * now
                lost = loss(keep)
                // Nothing carries energy (ΔW = 0 on the rows): nothing is cut.
                if fixed == nil && now <= 0 { keep = count }
                if fixed == nil && now > 0 {
                    while keep < count && lost > budget {
                        keep += 1
                        lost = loss(keep)
                    }
                    var low = 0
                    while keep - low > 1 {
                        let middle = (low + keep) / 2, trial = loss(middle)
                        if trial <= budget { keep = middle; lost = trial } else { low = middle }
                    }
                }
            }
            if keep < x.coreSizes[k] { x = cut(x, mode: k, a, keep: keep) }
            cuts.append(Mode(rankBefore: input.coreSizes[k], rankAfter: x.coreSizes[k], energies: a.energies,
                             exactWeighting: a.exact, lostEnergy: lost))
        }
        return (x, cuts)
    }

    /// A mode's spectrum and its cut: `core ← core ×ₖ right(κ)`, `U_k ← U_k·left(κ)`.
    struct Analysis {
        var energies: [Double]
        var left: (Int) -> [Double]
        var right: (Int) -> [Double]
        var exact: Bool
    }

    /// Mode k cut to κ components, its factor made orthonormal again.
    static func cut(_ x: TuckerTensor, mode k: Int, _ a: Analysis, keep: Int) -> TuckerTensor {
        var y = x
        let c = x.coreSizes[k], n = x.modes[k].size
        y.multiplyCore(mode: k, by: a.right(keep), rows: keep)
        let u = DenseLinearAlgebra.multiply(x.factors[k]!, a.left(keep), m: n, n: keep, k: c)
        let (q, r, kept) = DenseLinearAlgebra.thinQR(u, rows: n, cols: keep)
        y.factors[k] = q
        y.multiplyCore(mode: k, by: r, rows: kept)
        return y
    }

    /// The leading κ eigenvectors `[c, κ]` of the columns of `vectors` `[c, c]`.
    static func columns(_ vectors: [Double], rows: Int, cols: Int, keep: Int) -> [Double] {
        var v = [Double](repeating: 0, count: rows * keep)
        for i in 0..<rows { for j in 0..<keep { v[i * keep + j] = vectors[i * cols + j] } }
        return v
    }

    static func eigen(_ a: [Double], n: Int) -> (values: [Double], vectors: [Double]) {
        guard let e = try? Float64LinearAlgebra.symmetricEigen(a, n: n) else {
            preconditionFailure("dsyevd failed to converge on a \(n)×\(n) mode Gram")
        }
        return (e.values.map { max($0, 0) }, e.vectors)
    }

    /// Mode k's data-weighted spectrum (x has orthonormal factors).
    static func analyse(_ x: TuckerTensor, mode k: Int, calibration: TTCalibration) -> Analysis {
        let c = x.coreSizes[k]
        let L = calibration.layers, M = calibration.modules
        func projection(_ m: [Double], exact: Bool) -> Analysis {
            let (values, vectors) = eigen(m, n: c)
            let v = { (keep: Int) in columns(vectors, rows: c, cols: c, keep: keep) }
            return Analysis(energies: values, left: v, right: { TTCanonicalForm.transpose(v($0), rows: c, cols: $0) }, exact: exact)
        }
        switch x.modes[k].kind {
        case .out:
            // Exact: Σ_{l,m} T₍ₖ₎T₍ₖ₎ᵀ of T = Z·S, out index untouched by the weighting.
            let outModes = x.modes(.out), rIn = x.modes(.in).reduce(1) { $0 * x.coreSizes[$1] }
            let shape = outModes.map { x.coreSizes[$0] } + [rIn], j = outModes.firstIndex(of: k)!
            let grams = x.coreGrams(calibration)
            let rOut = shape.dropLast().reduce(1, *)
            var gram = [Double](repeating: 0, count: c * c)
            for (b, z) in x.pairMatrices(layers: L, modules: M).enumerated() {
                let t = DenseLinearAlgebra.multiply(z, DenseLinearAlgebra.gramSquareRoot(grams[b], n: rIn), m: rOut, n: rIn, k: rIn)
                let g = DenseTensor.with(t, shape: shape) { $0.gram(mode: j, threads: 1) }
                for i in gram.indices { gram[i] += g[i] }
            }
            return projection(gram, exact: true)
        case .layer, .module:
            // The core side weighted with the Gram pooled over this mode's index.
            let core = x.canonicalCore(), width = core.out * core.in, grams = x.coreGrams(calibration)
            let isLayer = x.modes[k].kind == .layer
            var gram = [Double](repeating: 0, count: c * c)
            for other in 0..<(isLayer ? M : L) {
                var pooled = [Double](repeating: 0, count: core.in * core.in)
                for own in 0..<(isLayer ? L : M) {
                    let g = grams[isLayer ? own * M + other : other * M + own]
                    for i in pooled.indices { pooled[i] += g[i] }
                }
                // Z⁽ᵃ⁾ [c, R_out·R_in]: the core at this mode's index a, the other mode contracted.
                let w = x.row(isLayer ? x.moduleMode : x.layerMode, other)
                var z = [Double](repeating: 0, count: c * width)
                for a in 0..<core.layer { for b in 0..<core.module {
                    let weight = w[isLayer ? b : a], row = isLayer ? a : b
                    if weight == 0 { continue }
                    let base = (a * core.module + b) * width
                    for i in 0..<width { z[row * width + i] += weight * core.values[base + i] }
                } }
                let weighted = DenseLinearAlgebra.multiply(z, pooled, m: c * core.out, n: core.in, k: core.in)
                let g = DenseLinearAlgebra.multiply(z, weighted, m: c, n: c, k: width, transB: true)
                for i in gram.indices { gram[i] += g[i] }
            }
            return projection(gram, exact: false)
        case .in:
            let pooled = x.factors[k].map { u in
                let g = pooledInGram(x, mode: k, calibration: calibration), n = x.modes[k].size
                return DenseLinearAlgebra.multiply(u, DenseLinearAlgebra.multiply(g, u, m: n, n: c, k: n), m: c, n: c, k: n, transA: true)
            }!
            // C₍ₖ₎ = W·Λ^{1/2}·Yᵀ (Y orthonormal): R = W·Λ^{1/2} is the factor side's share of the core.
            let (lambda, w) = eigen(DenseTensor.with(x.core, shape: x.coreSizes) { $0.gram(mode: k, threads: 1) }, n: c)
            let p = lambda.filter { $0 > 1e-13 * (lambda.first ?? 0) }.count
            guard p > 0 else {
                let identity = { (keep: Int) in columns(TuckerTensor.identity(c), rows: c, cols: c, keep: keep) }
                return Analysis(energies: [Double](repeating: 0, count: c), left: identity,
                                right: { TTCanonicalForm.transpose(identity($0), rows: c, cols: $0) }, exact: true)
            }
            var r = columns(w, rows: c, cols: c, keep: p)
            for i in 0..<c { for j in 0..<p { r[i * p + j] *= lambda[j].squareRoot() } }
            let weighted = DenseLinearAlgebra.multiply(r, DenseLinearAlgebra.multiply(pooled, r, m: c, n: p, k: c), m: p, n: p, k: c, transA: true)
            let (values, v) = eigen(weighted, n: p)
            let exact = x.layerMode == nil && x.moduleMode == nil && x.modes(.in).count == 1
            return Analysis(energies: values, left: { keep in
                DenseLinearAlgebra.multiply(r, columns(v, rows: p, cols: p, keep: keep), m: c, n: keep, k: p)
            }, right: { keep in
                // V_κᵀ·Λ^{-1/2}·Wᵀ [κ, c].
                var scaled = columns(v, rows: p, cols: p, keep: keep)
                for i in 0..<p { for j in 0..<keep { scaled[i * keep + j] /= lambda[i].squareRoot() } }
                return DenseLinearAlgebra.multiply(scaled, columns(w, rows: c, cols: c, keep: p), m: keep, n: c, k: p,
                                                   transA: true, transB: true)
            }, exact: exact)
        }
    }

    /// Σ_{l,m} G[l,m] on in mode k's own index `[n_k, n_k]`, traced over the other in factors.
    static func pooledInGram(_ x: TuckerTensor, mode k: Int, calibration: TTCalibration) -> [Double] {
        let n = calibration.inFeatures, inModes = x.modes(.in), size = x.modes[k].size
        var own = [Int](repeating: 0, count: n), rest = [Int](repeating: 0, count: n)
        for i in 0..<n {
            var remainder = i, scale = 1
            for j in inModes.reversed() {
                let digit = remainder % x.modes[j].size
                remainder /= x.modes[j].size
                if j == k { own[i] = digit } else { rest[i] += digit * scale; scale *= x.modes[j].size }
            }
        }
        var pooled = [Double](repeating: 0, count: size * size)
        for g in calibration.pairGrams {
            for i in 0..<n { for i2 in 0..<n where rest[i] == rest[i2] { pooled[own[i] * size + own[i2]] += g[i * n + i2] } }
        }
        return pooled
    }

    /// `--scope global`: every non-full mode's spectrum on the input, and the
    /// cuts that drop the weakest components of all modes together while their
    /// energy stays within (1 − T) of the tensor's.
    static func globalRanks(_ input: TuckerTensor, calibration: TTCalibration, threshold: Double) -> [Int?] {
        var x = input
        x.orthonormalise()
        let spectra = x.modes.indices.map { k in x.factors[k] == nil ? [] : analyse(x, mode: k, calibration: calibration).energies }
        var ranks: [Int?] = x.modes.indices.map { x.factors[$0] == nil ? nil : spectra[$0].count }
        let total = calibration.pairEnergies(x).reduce(0, +)
        guard total > 0 else { return ranks }
        var budget = (1 - threshold + TTRounding.zeroShare) * total
        while true {
            var best: Int?, bestEnergy = Double.infinity
            for (k, s) in spectra.enumerated() {
                guard let r = ranks[k], r > 1 else { continue }
                if s[r - 1] < bestEnergy { best = k; bestEnergy = s[r - 1] }
            }
            guard let k = best, bestEnergy <= budget else { break }
            budget -= bestEnergy
            ranks[k] = ranks[k]! - 1
        }
        return ranks
    }
}
