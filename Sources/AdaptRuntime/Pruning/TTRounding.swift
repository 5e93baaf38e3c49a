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
/// right), no one-sided weighting is exact. The side with the larger share of
/// the in modes then carries the Gram pooled over the modes on the other side
/// (summed over its layers and modules, traced over its in modes) — a
/// heuristic for the order of components — and the energy this bond loses is
/// measured on the calibration rows after the cut, never predicted; with
/// `--scope pair` the bond keeps the smallest number of those components whose
/// measured loss is ≤ 1 − T of its energy.
/// The group's lost energy is always measured: `E(D − D')` of the input and the
/// rounded train, so what is reported is what eval loses on the rows.
public enum TTRounding {
    public struct Options: Sendable {
        public var threshold: Double
        /// `--scope global`: one budget, (1 − T) of the train's energy, across all bonds.
        public var globalScope: Bool
        public init(threshold: Double = 0.9, globalScope: Bool = false) {
            precondition(threshold > 0 && threshold <= 1, "TTRounding: the threshold must be in (0, 1]")
            self.threshold = threshold
            self.globalScope = globalScope
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
        let pairEnergies = calibration.pairEnergies(input, modes: modes).map { $0 * scale * scale }
        let total = pairEnergies.reduce(0, +)
        let s2 = scale * scale
        var chosen: [Int]? = nil
        if options.globalScope {
            chosen = globalRanks(input, modes: modes, calibration: calibration, threshold: options.threshold)
        }
        while true {
            var (train, bonds) = sweep(input, modes: modes, calibration: calibration, threshold: options.threshold, ranks: chosen)
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
            // E(scale·(D − D'/factor)), contracted as the train D − D'/factor (ranks r + r').
            let lost = calibration.pairEnergies(input.minus(rounded, times: 1 / factor), modes: modes).map { $0 * s2 }
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

    /// One left-to-right pass: every bond canonicalised, SVD'd and cut, to
    /// `ranks[k]` when given, else by the threshold on that bond's own energy.
    static func sweep(_ input: TensorTrain, modes: [TTMode], calibration: TTCalibration, threshold: Double,
                      ranks fixed: [Int]?) -> (TensorTrain, [Bond]) {
        var train = input
        var bonds: [Bond] = []
        for k in 1..<max(train.count, 1) {
            let analysis = analyse(&train, bond: k, modes: modes, calibration: calibration)
            let before = input.ranks[k]
            var keep = fixed.map { min($0[k - 1], analysis.energies.count) } ?? keptRank(analysis.energies, threshold: threshold)
            var lost = analysis.energies.dropFirst(keep).reduce(0, +)
            if !analysis.exact {
                let energyNow = energy(train, modes: modes, calibration: calibration)
                // The pooled spectrum only orders the components. The rank kept is one
                // whose measured loss stays within 1 − T of the bond's energy: the
                // pooled rule's rank, widened until it passes, then bisected down to
                // the smallest passing rank (each measurement contracts the train with
                // itself, so about 1 + log2(r) of them, not r).
                let count = analysis.energies.count
                func loss(_ r: Int) -> Double {
                    r >= count ? 0 : measuredLoss(train, bond: k, basis: analysis.basis, keep: r, modes: modes, calibration: calibration)
                }
                let budget = (1 - threshold + zeroShare) * energyNow
                lost = loss(keep)
                if fixed == nil {
                    while keep < count && lost > budget {
                        keep += 1
                        lost = loss(keep)
                    }
                    var low = 0  // largest rank known to fail (0: none tried)
                    while keep - low > 1 {
                        let middle = (low + keep) / 2, trial = loss(middle)
                        if trial <= budget { keep = middle; lost = trial } else { low = middle }
                    }
                }
            }
            if keep < train.ranks[k] {
                train.project(bond: k, onto: columns(analysis.basis, rows: train.ranks[k], keep: keep), columns: keep)
            }
            bonds.append(Bond(rankBefore: before, rankAfter: train.ranks[k], energies: analysis.energies,
                              exactWeighting: analysis.exact, lostEnergy: lost))
        }
        return (train, bonds)
    }

    /// The bond's data-weighted spectrum: the train is left in the canonical
    /// form the cut needs (orthonormal on the unweighted side).
    static func analyse(_ train: inout TensorTrain, bond k: Int, modes: [TTMode], calibration: TTCalibration)
        -> (energies: [Double], basis: [Double], exact: Bool) {
        let n = train.count
        let left = Array(0..<k), right = Array(k..<n)
        let weightedLeft = left.filter { modes[$0].isWeighted }.count, weightedRight = right.filter { modes[$0].isWeighted }.count
        let exact = weightedLeft == 0 || weightedRight == 0
        let inLeft = left.filter { modes[$0].kind == .in }.reduce(1) { $0 * modes[$1].size }
        let inRight = right.filter { modes[$0].kind == .in }.reduce(1) { $0 * modes[$1].size }
        let weightOnLeft = exact ? weightedRight == 0 : (inLeft != inRight ? inLeft > inRight : weightedLeft >= weightedRight)
        let r: Int
        let f: [Double]
        if weightOnLeft {
            TTCanonicalForm.rightOrthogonalise(&train, downTo: k)
            r = train.ranks[k]
            f = train.product(0..<k)
        } else {
            TTCanonicalForm.leftOrthogonalise(&train, upTo: k)
            r = train.ranks[k]
            let rightPart = train.product(k..<n)
            f = TTCanonicalForm.transpose(rightPart, rows: r, cols: rightPart.count / r)
        }
        let m = calibration.weightedFactor(f, rank: r, modes: modes, side: weightOnLeft ? left : right)
        let svd = DenseLinearAlgebra.svd(m, rows: m.count / r, cols: r)
        // Vt [k, r]: its rows are the bond's components in the bond space.
        return (svd.s.map { $0 * $0 }, svd.vt, exact)
    }

    /// The first `keep` rows of `vt` `[*, rows]` as columns `[rows, keep]`.
    static func columns(_ vt: [Double], rows: Int, keep: Int) -> [Double] {
        var v = [Double](repeating: 0, count: rows * keep)
        for j in 0..<keep { for i in 0..<rows { v[i * keep + j] = vt[j * rows + i] } }
        return v
    }

    /// `E(D − D')` of cutting bond k to the first `keep` components: the train
    /// with `I − V_r·V_rᵀ` at the bond, contracted with itself in the weighted metric.
    static func measuredLoss(_ train: TensorTrain, bond k: Int, basis: [Double], keep: Int, modes: [TTMode],
                             calibration: TTCalibration) -> Double {
        let r = train.ranks[k]
        let v = columns(basis, rows: r, keep: keep)
        var complement = DenseLinearAlgebra.multiply(v, v, m: r, n: r, k: keep, transB: true).map { -$0 }
        for i in 0..<r { complement[i * r + i] += 1 }
        var cut = train
        let leftRows = cut.ranks[k - 1] * cut.sizes[k - 1]
        cut.cores[k - 1] = DenseLinearAlgebra.multiply(cut.cores[k - 1], complement, m: leftRows, n: r, k: r)
        return energy(cut, modes: modes, calibration: calibration)
    }

    /// `E(D)` of the train, contracted core by core (never the dense tensor).
    static func energy(_ train: TensorTrain, modes: [TTMode], calibration: TTCalibration) -> Double {
        calibration.pairEnergies(train, modes: modes).reduce(0, +)
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
    static func globalRanks(_ input: TensorTrain, modes: [TTMode], calibration: TTCalibration, threshold: Double) -> [Int] {
        var spectra: [[Double]] = []
        for k in 1..<max(input.count, 1) {
            var train = input
            spectra.append(analyse(&train, bond: k, modes: modes, calibration: calibration).energies)
        }
        let total = energy(input, modes: modes, calibration: calibration)
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
