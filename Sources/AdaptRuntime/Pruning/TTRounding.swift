/// Data-weighted TT-rounding (DESIGN §4): the rank level of the pruner for a
/// tensor-train group, and what an app calls to prune a train at run time.
///
/// At each bond k in turn (left to right), the train is brought to the
/// canonical form that puts the orthogonality centre on the bond's weighted
/// side — the side holding the layer, module and in modes, which the
/// calibration Gram `Σ xᵀx` acts on — and the other side is orthonormal. The
/// weighted side `f` `[P, r_k]` then gives `M = (S ⊗ I)·f` (S the Gram's
/// square root) with `‖M‖² = E(D)`, the output energy on the calibration rows;
/// the SVD `M = U·Σ·Vᵀ` orders the bond's components by output energy σ_j²,
/// and truncating the bond to V's first r columns (inserting `V_r·V_rᵀ`) is a
/// projection on the unweighted side, so exactly `Σ_{j≥r} σ_j²` is lost.
///
/// Where the bond splits the weighted modes (say `layer` left of it, `in`
/// right), no one-sided weighting is exact. The weighted side then carries the
/// weighting pooled over the modes on the other side (summed over its layers
/// and modules, traced over its in modes) — a heuristic for the order of
/// components, `Σ_p Γ_p` in `TTWeightedMetric`'s terms — and the energy each
/// number of kept components loses is measured exactly on the rows (the
/// components' output inner products Φ, one contraction per bond, so every
/// candidate costs r² additions); with `--scope pair` the bond keeps the
/// smallest number of those components whose loss is ≤ 1 − T of its energy.
/// The group's lost energy is always measured: `E(D − D')` of the input and the
/// rounded train, so what is reported is what eval loses on the rows.
public enum TTRounding {
    public struct Options: Sendable {
        public var threshold: Double
        /// `--scope global`: one budget, (1 − T) of the train's energy, across all bonds.
        public var globalScope: Bool
        /// Threads for the contractions with the calibration rows (one input per task).
        public var threads: Int
        /// - Parameters:
        ///   - threshold: the share of output energy each bond keeps (`--scope pair`) or the train keeps (global), in (0, 1].
        ///   - globalScope: one budget across bonds instead of one per bond.
        ///   - threads: threads for the contractions with the rows.
        public init(threshold: Double = 0.9, globalScope: Bool = false, threads: Int = 1) {
            precondition(threshold > 0 && threshold <= 1, "TTRounding: the threshold must be in (0, 1]")
            self.threshold = threshold
            self.globalScope = globalScope
            self.threads = threads
        }
    }

    /// What became of one bond.
    public struct Bond: Sendable {
        public var rankBefore: Int
        public var rankAfter: Int
        /// σ_j² of the bond's data-weighted SVD (scale² included), descending:
        /// the output energy of each component on the calibration rows (exact
        /// where `exactWeighting`, pooled otherwise).
        public var energies: [Double]
        /// True when every weighted mode lies on one side of the bond.
        public var exactWeighting: Bool
        /// Output energy this bond's cut lost on the calibration rows (scale² included):
        /// `Σ_{j≥rankAfter} energies[j]` where exact, measured otherwise.
        public var lostEnergy: Double
    }

    public struct Result: Sendable {
        /// The rounded cores `[r_{k-1}, n_k, r_k]` (the input's own when no bond was cut).
        public var cores: [[Float]]
        public var ranks: [Int]
        public var bonds: [Bond]
        /// Per pair (`l·modules + m`): the input's output energy and what the rounding lost, measured.
        public var pairEnergies: [Double]
        public var pairLostEnergies: [Double]
        public var unchanged: Bool
        public var totalEnergy: Double { pairEnergies.reduce(0, +) }
        public var lostEnergy: Double { pairLostEnergies.reduce(0, +) }
        public var bondRanks: [Int] { Array(ranks.dropFirst().dropLast()) }
    }

    /// Shares below this fraction of a bond's energy count as zero (round-off
    /// of a rank-deficient train), so a threshold of 1 still finds true ranks.
    static let zeroShare = 1e-12

    /// Rounds the train `cores` (ranks `ranks` = [1, r_1, …, 1], modes `modes`
    /// in the group's order) whose ΔW is `scale·D`. `newScale(r)` is the scale
    /// for a largest bond rank r (alpha is kept, DESIGN §4): the change of scale
    /// is folded into the last core, so the kept components are unchanged.
    public static func round(cores: [[Float]], ranks: [Int], modes: [TTMode], calibration: TTCalibration, scale: Double,
                             newScale: (Int) -> Double = { _ in 1 }, options: Options) -> Result {
        let input = TensorTrain(cores: cores, sizes: modes.map(\.size), ranks: ranks)
        let metric = TTWeightedMetric(calibration: calibration, modes: modes, threads: options.threads)
        // One pass over the rows prepares the input's energies and the bonds inside the segment.
        let (projection, prepared) = metric.project(input, preparing: metric.preparableBonds(input))
        let s2 = scale * scale
        let inputEnergies = metric.pairInnerProducts(input, projection, input, projection)
        let pairEnergies = inputEnergies.map { $0 * s2 }
        let total = pairEnergies.reduce(0, +)
        var chosen: [Int]? = nil
        if options.globalScope {
            chosen = globalRanks(input, metric: metric, projection: projection, threshold: options.threshold)
        }
        while true {
            var (train, bonds) = sweep(input, metric: metric, projection: projection, prepared: prepared, threshold: options.threshold, ranks: chosen)
            bonds = bonds.map { var b = $0; b.energies = b.energies.map { $0 * s2 }; b.lostEnergy *= s2; return b }
            if bonds.allSatisfy({ $0.rankAfter == $0.rankBefore }) && train.ranks == ranks {
                return Result(cores: cores, ranks: ranks, bonds: bonds, pairEnergies: pairEnergies,
                              pairLostEnergies: pairEnergies.map { _ in 0 }, unchanged: true)
            }
            // Gauge-fixed output: left-orthogonal cores, the norm (and the scale's change) in the last.
            TTCanonicalForm.leftOrthogonalise(&train, upTo: train.count - 1)
            let factor = scale / newScale(train.bondRanks.max() ?? 1)
            train.cores[train.count - 1] = train.cores[train.count - 1].map { $0 * factor }
            let floatCores = train.cores.map { $0.map { Float($0) } }
            let rounded = TensorTrain(cores: floatCores, sizes: train.sizes, ranks: train.ranks)
            // E(scale·(D − c·D')), c = 1/factor, measured on the rows: E(D) − 2c⟨D, D'⟩ + c²E(D').
            let roundedProjection = metric.project(rounded)
            let cross = metric.pairInnerProducts(input, projection, rounded, roundedProjection)
            let own = metric.pairInnerProducts(rounded, roundedProjection, rounded, roundedProjection)
            let c = 1 / factor
            let lost = inputEnergies.indices.map { p in max(0, inputEnergies[p] - 2 * c * cross[p] + c * c * own[p]) * s2 }
            // Global scope: the cuts chosen on the input's spectra may lose more than
            // the budget where a bond is coupled; give back the best dropped component.
            if var ranksNow = chosen, lost.reduce(0, +) > (1 - options.threshold + zeroShare) * total,
               let widen = widenable(bonds, ranksNow) {
                ranksNow[widen] += 1
                chosen = ranksNow
                continue
            }
            return Result(cores: floatCores, ranks: rounded.ranks, bonds: bonds, pairEnergies: pairEnergies,
                          pairLostEnergies: lost, unchanged: false)
        }
    }

    /// The bond whose first dropped component carries the most energy, if any bond was cut.
    static func widenable(_ bonds: [Bond], _ ranks: [Int]) -> Int? {
        var best: Int?, bestEnergy = -1.0
        for (k, b) in bonds.enumerated() where ranks[k] < b.rankBefore && ranks[k] < b.energies.count {
            if b.energies[ranks[k]] > bestEnergy { best = k; bestEnergy = b.energies[ranks[k]] }
        }
        return best
    }

    /// One left-to-right pass: every bond canonicalised, measured and cut, to
    /// `ranks[k]` when given, else by the threshold on that bond's own energy.
    /// Where the weighting is not exact, the pooled spectrum only orders the
    /// components; the bond keeps the smallest number of them whose exactly
    /// measured loss (`TTWeightedMetric.Bond.loss`) is within 1 − T of the
    /// train's energy there.
    static func sweep(_ input: TensorTrain, metric: TTWeightedMetric, projection: TTWeightedMetric.Projection,
                      prepared: [Int: TTWeightedMetric.Prepared] = [:], threshold: Double,
                      ranks fixed: [Int]?) -> (TensorTrain, [Bond]) {
        var train = input
        var reference = projection
        var bonds: [Bond] = []
        for k in 1..<max(train.count, 1) {
            let analysis = metric.analyse(&train, bond: k, reference: &reference, prepared: prepared)
            let before = input.ranks[k], count = analysis.energies.count
            var keep = fixed.map { min($0[k - 1], count) } ?? keptRank(analysis.energies, threshold: threshold)
            var lost = analysis.energies.dropFirst(keep).reduce(0, +)
            if !analysis.exact {
                // Σ Φ over every component is the train's energy now (the basis is complete).
                let budget = (1 - threshold + zeroShare) * analysis.loss(keeping: 0)
                if fixed == nil { keep = (1...max(count, 1)).first { analysis.loss(keeping: $0) <= budget } ?? count }
                lost = analysis.loss(keeping: keep)
            }
            if keep < train.ranks[k] {
                train.project(bond: k, onto: columns(analysis.basis, rows: train.ranks[k], keep: keep), columns: keep)
            }
            bonds.append(Bond(rankBefore: before, rankAfter: train.ranks[k], energies: analysis.energies,
                              exactWeighting: analysis.exact, lostEnergy: lost))
        }
        return (train, bonds)
    }

    /// The first `keep` rows of `vt` `[*, rows]` as columns `[rows, keep]`.
    static func columns(_ vt: [Double], rows: Int, keep: Int) -> [Double] {
        var v = [Double](repeating: 0, count: rows * keep)
        for j in 0..<keep { for i in 0..<rows { v[i * keep + j] = vt[j * rows + i] } }
        return v
    }

    /// The smallest rank whose components (descending) reach `threshold` of
    /// the bond's energy, at least 1; everything when there is no energy.
    public static func keptRank(_ energies: [Double], threshold: Double) -> Int {
        let total = energies.reduce(0, +)
        guard total > 0 else { return energies.count }
        var cumulative = 0.0
        for (j, e) in energies.enumerated() {
            cumulative += e
            if cumulative >= (threshold - zeroShare) * total { return j + 1 }
        }
        return energies.count
    }

    /// `--scope global`: the spectra of every bond of the input train, and
    /// the cuts that drop the weakest components of all bonds together while
    /// their energy stays within (1 − T) of the train's.
    static func globalRanks(_ input: TensorTrain, metric: TTWeightedMetric, projection: TTWeightedMetric.Projection,
                            threshold: Double) -> [Int] {
        var spectra: [[Double]] = []
        for k in 1..<max(input.count, 1) {
            var train = input, reference = projection
            spectra.append(metric.analyse(&train, bond: k, reference: &reference).energies)
        }
        let total = metric.pairInnerProducts(input, projection, input, projection).reduce(0, +)
        var ranks = spectra.map(\.count)
        guard total > 0 else { return ranks }
        var budget = (1 - threshold) * total + zeroShare * total
        // Weakest first: the last component of whichever bond has the smallest one.
        while true {
            var best: Int?, bestEnergy = Double.infinity
            for (k, s) in spectra.enumerated() where ranks[k] > 1 {
                let e = s[ranks[k] - 1]
                if e < bestEnergy { best = k; bestEnergy = e }
            }
            guard let k = best, bestEnergy <= budget else { break }
            budget -= bestEnergy
            ranks[k] -= 1
        }
        return ranks
    }
}
