/// Leave-one-out pruning of a CP group's components (DESIGN §4): the rank
/// level of the pruner for a cp group, and what an app calls at run time.
///
/// With factors F_k `[n_k, R]`, pair (l, m)'s ΔW/s is
/// `F_out·diag(w[l,m])·F_inᵀ`, `w[l,m] = F_layer[l] ⊙ F_module[m]` (ones where
/// the group has no such mode) and `F_out`, `F_in` the Khatri–Rao products of
/// the out and in factors (factor order). The output energy on the calibration
/// rows of the components in a set S is then `1_Sᵀ P 1_S` with the component
/// Gram `P = Σ_{l,m} (w wᵀ) ⊙ (F_outᵀF_out) ⊙ (F_inᵀ G[l,m] F_in)` `[R, R]`.
/// Components are not orthogonal, so P has off-diagonal terms and no share is
/// additive: the energy lost by dropping a set S is `1_Sᵀ P 1_S`, and leaving
/// out c after S costs `(1_S + e_c)ᵀ P (1_S + e_c)`. The pruner drops the
/// component whose removal loses least, re-measures, and stops before the
/// loss passes `(1 − T)` of the group's energy (at least one component stays).
public enum CPPruning {
    public struct Result: Sendable {
        /// F_k `[n_k, R']` in mode order, the kept columns of the input's.
        public var factors: [[Float]]
        public var rank: Int
        /// The input components kept, ascending.
        public var kept: [Int]
        /// The input components dropped, in the order they were dropped.
        public var dropped: [Int]
        /// Per input component (scale² included): what leaving it out lost when
        /// it was measured last — at its drop for a dropped one (the loss added),
        /// after the last drop for a kept one.
        public var importances: [Double]
        public var pairEnergies: [Double]
        public var pairLostEnergies: [Double]
        public var unchanged: Bool
        public var totalEnergy: Double { pairEnergies.reduce(0, +) }
        public var lostEnergy: Double { pairLostEnergies.reduce(0, +) }
    }

    /// Prunes the CP tensor `factors` (`[n_k, R]` per mode, `modes` in the
    /// group's order) whose ΔW is `scale·D`. `newScale(R')` is the scale for
    /// the new rank (alpha is kept): the change is folded into the first out factor.
    /// - Parameters:
    ///   - factors: F_k `[n_k, R]` per mode.
    ///   - modes: The group's modes in its order.
    ///   - calibration: The Gram of each pair's calibration rows.
    ///   - scale: s of ΔW = s·D.
    ///   - newScale: s for the new rank.
    ///   - threshold: The share of the output energy to keep, in (0, 1].
    public static func prune(factors: [[Float]], modes: [TTMode], calibration: TTCalibration, scale: Double,
                             newScale: (Int) -> Double = { _ in 1 }, threshold: Double) -> Result {
        precondition(threshold > 0 && threshold <= 1, "CPPruning: the threshold must be in (0, 1]")
        let input = factors.map { $0.map(Double.init) }
        let rank = factors[0].count / modes[0].size
        let s2 = scale * scale
        let pairGrams = componentGrams(input, modes: modes, rank: rank, calibration: calibration)
        let p = pairGrams.dropFirst().reduce(pairGrams[0]) { zip($0, $1).map { $0 + $1 } }
        let pairEnergies = pairGrams.map { $0.reduce(0, +) * s2 }
        let total = p.reduce(0, +)
        func loss(_ set: [Int]) -> Double { set.reduce(0) { sum, c in sum + set.reduce(0) { $0 + p[c * rank + $1] } } }

        var kept = Array(0..<rank), dropped: [Int] = []
        var importances = (0..<rank).map { p[$0 * rank + $0] }
        var lostNow = 0.0
        let budget = (1 - threshold + TTRounding.zeroShare) * total
        // Nothing carries energy (ΔW = 0 on the rows): nothing is dropped.
        while kept.count > 1 && total > 0 {
            // Leave-one-out from what is kept now: the loss if c went next.
            var best = kept[0], bestLoss = Double.infinity
            for c in kept {
                let trial = loss(dropped + [c])
                importances[c] = trial - lostNow
                if trial < bestLoss { best = c; bestLoss = trial }
            }
            guard bestLoss <= budget else { break }
            dropped.append(best)
            kept.removeAll { $0 == best }
            lostNow = bestLoss
        }
        for c in kept { importances[c] = loss(dropped + [c]) - lostNow }
        if dropped.isEmpty {
            return Result(factors: factors, rank: rank, kept: kept, dropped: [], importances: importances.map { $0 * s2 },
                          pairEnergies: pairEnergies, pairLostEnergies: pairEnergies.map { _ in 0 }, unchanged: true)
        }
        let fold = scale / newScale(kept.count)
        let first = modes.indices.first { modes[$0].kind == .out } ?? 0
        let stored: [[Float]] = modes.indices.map { k in
            var columns = [Float](repeating: 0, count: modes[k].size * kept.count)
            for i in 0..<modes[k].size {
                for (j, c) in kept.enumerated() {
                    columns[i * kept.count + j] = Float(input[k][i * rank + c] * (k == first ? fold : 1))
                }
            }
            return columns
        }
        // E(scale·(D − D')) of the stored factors, as the CP [D | −D'/fold] of R + R' components.
        let difference: [[Double]] = modes.indices.map { k in
            var columns: [Double] = []
            let n = modes[k].size, r2 = kept.count
            for i in 0..<n {
                columns += input[k][(i * rank)..<((i + 1) * rank)]
                columns += (0..<r2).map { j in Double(stored[k][i * r2 + j]) * (k == first ? -1 / fold : 1) }
            }
            return columns
        }
        let lost = componentGrams(difference, modes: modes, rank: rank + kept.count, calibration: calibration)
            .map { max($0.reduce(0, +), 0) * s2 }
        return Result(factors: stored, rank: kept.count, kept: kept, dropped: dropped, importances: importances.map { $0 * s2 },
                      pairEnergies: pairEnergies, pairLostEnergies: lost, unchanged: false)
    }

    /// Per pair (`l·modules + m`): `P[l,m] = (w wᵀ) ⊙ (F_outᵀF_out) ⊙ (F_inᵀ G[l,m] F_in)` `[R, R]`.
    /// - Parameters:
    ///   - factors: F_k `[n_k, rank]` per mode.
    ///   - modes: The group's modes in its order.
    ///   - rank: R.
    ///   - calibration: The Gram of each pair's calibration rows.
    public static func componentGrams(_ factors: [[Double]], modes: [TTMode], rank: Int, calibration: TTCalibration) -> [[Double]] {
        let fOut = khatriRao(factors, modes: modes, kind: .out, rank: rank)
        let fIn = khatriRao(factors, modes: modes, kind: .in, rank: rank)
        let outCount = fOut.count / rank, n = calibration.inFeatures
        precondition(fIn.count == n * rank, "CPPruning: the in modes do not multiply to the rows' width")
        let outGram = DenseLinearAlgebra.multiply(fOut, fOut, m: rank, n: rank, k: outCount, transA: true)
        let layer = modes.firstIndex { $0.kind == .layer }, module = modes.firstIndex { $0.kind == .module }
        func row(_ k: Int?, _ i: Int) -> [Double] {
            k.map { Array(factors[$0][(i * rank)..<((i + 1) * rank)]) } ?? [Double](repeating: 1, count: rank)
        }
        let inGrams = calibration.projectedGrams(fIn, columns: rank)
        var result: [[Double]] = []
        for l in 0..<calibration.layers {
            for m in 0..<calibration.modules {
                let w = zip(row(layer, l), row(module, m)).map { $0 * $1 }
                let inGram = inGrams[l * calibration.modules + m]
                var pair = [Double](repeating: 0, count: rank * rank)
                for c in 0..<rank { for d in 0..<rank { pair[c * rank + d] = w[c] * w[d] * outGram[c * rank + d] * inGram[c * rank + d] } }
                result.append(pair)
            }
        }
        return result
    }

    /// The column-wise Kronecker product of `kind`'s factors (factor order, the
    /// first most significant): `[∏ n_k, R]`.
    static func khatriRao(_ factors: [[Double]], modes: [TTMode], kind: TTMode.Kind, rank: Int) -> [Double] {
        var result = [Double](repeating: 1, count: rank), rows = 1
        for k in modes.indices.filter({ modes[$0].kind == kind }).sorted(by: { modes[$0].factor < modes[$1].factor }) {
            let n = modes[k].size
            var next = [Double](repeating: 0, count: rows * n * rank)
            for i in 0..<rows { for j in 0..<n { for c in 0..<rank { next[(i * n + j) * rank + c] = result[i * rank + c] * factors[k][j * rank + c] } } }
            result = next
            rows *= n
        }
        return result
    }
}

extension CPPruning {
    /// The factors of the layers `kept` (indices into the layer mode,
    /// ascending): their rows of the layer factor. A layer mode of one layer is
    /// no mode (DESIGN §2): its row is folded into the first out factor's
    /// columns and the mode removed. Nothing else changes.
    /// - Parameters:
    ///   - kept: The layers kept, indices into the layer mode, ascending.
    ///   - factors: F_k `[n_k, R]` per mode.
    ///   - modes: The group's modes in its order.
    public static func keepingLayers(_ kept: [Int], factors: [[Float]], modes: [TTMode]) -> (factors: [[Float]], modes: [TTMode]) {
        guard let k = modes.firstIndex(where: { $0.kind == .layer }) else { return (factors, modes) }
        let rank = factors[k].count / modes[k].size
        let rows = kept.flatMap { factors[k][($0 * rank)..<(($0 + 1) * rank)] }
        var factors = factors, modes = modes
        if kept.count > 1 {
            factors[k] = Array(rows)
            modes[k].size = kept.count
            return (factors, modes)
        }
        let first = modes.indices.first { modes[$0].kind == .out }!
        for i in 0..<modes[first].size { for c in 0..<rank { factors[first][i * rank + c] *= rows[c] } }
        factors.remove(at: k)
        modes.remove(at: k)
        return (factors, modes)
    }

    /// ΔW[l, m]/s = F_out·diag(F_layer[l] ⊙ F_module[m])·F_inᵀ `[out, in]` of the
    /// factors `factors` (`[n_k, rank]`, modes `modes`), at `l·modules + m`.
    /// - Parameters:
    ///   - factors: F_k `[n_k, rank]` per mode.
    ///   - modes: The group's modes in its order.
    ///   - rank: R.
    ///   - layers: The layer mode's size (1 without one).
    ///   - modules: The module mode's size (1 without one).
    public static func pairDeltas(_ factors: [[Double]], modes: [TTMode], rank: Int, layers: Int, modules: Int) -> [[Double]] {
        let fOut = khatriRao(factors, modes: modes, kind: .out, rank: rank)
        let fIn = khatriRao(factors, modes: modes, kind: .in, rank: rank)
        let outCount = fOut.count / rank, inCount = fIn.count / rank
        let layer = modes.firstIndex { $0.kind == .layer }, module = modes.firstIndex { $0.kind == .module }
        func row(_ k: Int?, _ i: Int) -> [Double] {
            k.map { Array(factors[$0][(i * rank)..<((i + 1) * rank)]) } ?? [Double](repeating: 1, count: rank)
        }
        var result: [[Double]] = []
        for l in 0..<layers {
            for m in 0..<modules {
                let w = zip(row(layer, l), row(module, m)).map { $0 * $1 }
                var scaled = fOut
                for o in 0..<outCount { for c in 0..<rank { scaled[o * rank + c] *= w[c] } }
                result.append(DenseLinearAlgebra.multiply(scaled, fIn, m: outCount, n: inCount, k: rank, transB: true))
            }
        }
        return result
    }
}
