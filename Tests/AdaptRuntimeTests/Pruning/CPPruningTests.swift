import AdaptRuntime
import AdaptTestSupport
import XCTest

/// Leave-one-out CP pruning (DESIGN §4) against a float64 reference of the
/// same rule written here from the definition: each component's ΔW[l,m]
/// multiplied out entry by entry, the output energy of a set of components by
/// its sum over the calibration rows, and the greedy loop (drop the component
/// whose removal loses least, re-measure, stop before the loss passes 1 − T).
final class CPPruningTests: XCTestCase {
    struct Case {
        var modes: [TTMode]
        var factors: [[Float]]
        var rank: Int
        var layers: Int
        var modules: Int
        var outFeatures: Int
        var inFeatures: Int
        var rows: [[Float]]
        var counts: [Int]
        var calibration: TTCalibration { TTCalibration(rows: rows, counts: counts, layers: layers, modules: modules, inFeatures: inFeatures) }
    }

    static func randomCase(_ random: inout TestRandom) -> Case {
        let layers = [1, 2, 3][Int(random.next() % 3)], modules = [1, 2][Int(random.next() % 2)]
        var modes: [TTMode] = []
        if layers > 1 { modes.append(TTMode(.layer, size: layers)) }
        if modules > 1 { modes.append(TTMode(.module, size: modules)) }
        for k in 0..<(1 + Int(random.next() % 2)) { modes.append(TTMode(.out, size: 2 + Int(random.next() % 3), factor: k)) }
        for k in 0..<(1 + Int(random.next() % 2)) { modes.append(TTMode(.in, size: 2 + Int(random.next() % 3), factor: k)) }
        for i in stride(from: modes.count - 1, to: 0, by: -1) { modes.swapAt(i, Int(random.next() % UInt64(i + 1))) }
        let rank = 3 + Int(random.next() % 5)
        // Components of decaying, uneven size, so the order of drops matters.
        let sizes = (0..<rank).map { _ in Float(0.05 + Double(random.next() % 1000) / 1000) }
        let factors = modes.enumerated().map { k, m in
            var f = random.floats(m.size * rank)
            if k == 0 { for i in f.indices { f[i] *= sizes[i % rank] } }
            return f
        }
        let outFeatures = modes.filter { $0.kind == .out }.reduce(1) { $0 * $1.size }
        let inFeatures = modes.filter { $0.kind == .in }.reduce(1) { $0 * $1.size }
        var rows: [[Float]] = [], counts: [Int] = []
        for _ in 0..<(layers * modules) {
            rows.append(PruningReference.concentratedRows(&random, rows: 10, in: inFeatures, directions: max(1, inFeatures / 2)))
            counts.append(10)
        }
        return Case(modes: modes, factors: factors, rank: rank, layers: layers, modules: modules, outFeatures: outFeatures,
                    inFeatures: inFeatures, rows: rows, counts: counts)
    }

    /// ΔW[l·M + m] of the components `set` (times `scale`), entry by entry from the definition
    /// D[j…] = Σ_c ∏_k F_k[j_k, c].
    static func referenceDeltas(_ factors: [[Float]], rank: Int, _ c: Case, set: [Int], scale: Double) -> [[Double]] {
        var deltas = [[Double]](repeating: [Double](repeating: 0, count: c.outFeatures * c.inFeatures), count: c.layers * c.modules)
        let sizes = c.modes.map(\.size), total = sizes.reduce(1, *)
        let outs = c.modes.indices.filter { c.modes[$0].kind == .out }.sorted { c.modes[$0].factor < c.modes[$1].factor }
        let ins = c.modes.indices.filter { c.modes[$0].kind == .in }.sorted { c.modes[$0].factor < c.modes[$1].factor }
        for p in 0..<total {
            var digits = [Int](repeating: 0, count: sizes.count), rest = p
            for k in sizes.indices.reversed() { digits[k] = rest % sizes[k]; rest /= sizes[k] }
            var l = 0, m = 0, o = 0, i = 0
            for k in c.modes.indices where c.modes[k].kind == .layer { l = digits[k] }
            for k in c.modes.indices where c.modes[k].kind == .module { m = digits[k] }
            for k in outs { o = o * sizes[k] + digits[k] }
            for k in ins { i = i * sizes[k] + digits[k] }
            var v = 0.0
            for comp in set { v += c.modes.indices.reduce(1.0) { $0 * Double(factors[$1][digits[$1] * rank + comp]) } }
            deltas[l * c.modules + m][o * c.inFeatures + i] += scale * v
        }
        return deltas
    }

    static func energy(_ deltas: [[Double]], _ c: Case) -> Double {
        deltas.enumerated().reduce(0) { sum, item in
            sum + PruningReference.outputEnergy(item.element, out: c.outFeatures, in: c.inFeatures, x: c.rows[item.offset], rows: c.counts[item.offset])
        }
    }

    /// The rule in float64 from the definition: (kept, dropped in order, lost energy).
    static func referencePrune(_ c: Case, threshold: Double, scale: Double) -> (kept: [Int], dropped: [Int], lost: Double) {
        let total = energy(referenceDeltas(c.factors, rank: c.rank, c, set: Array(0..<c.rank), scale: scale), c)
        var kept = Array(0..<c.rank), dropped: [Int] = [], lost = 0.0
        while kept.count > 1 {
            let trials = kept.map { comp in (comp, energy(referenceDeltas(c.factors, rank: c.rank, c, set: dropped + [comp], scale: scale), c)) }
            let best = trials.min { $0.1 < $1.1 }!
            guard best.1 <= (1 - threshold + 1e-12) * total else { break }
            dropped.append(best.0)
            kept.removeAll { $0 == best.0 }
            lost = best.1
        }
        return (kept, dropped, lost)
    }

    func testLeaveOneOutMatchesTheFloat64Reference() {
        var random = TestRandom(seed: 301)
        var cut = 0
        for trial in 0..<16 {
            let c = Self.randomCase(&random)
            let threshold = [0.7, 0.9, 0.97, 0.995][trial % 4]
            let s = 8 / Double(c.rank)
            let result = CPPruning.prune(factors: c.factors, modes: c.modes, calibration: c.calibration, scale: s,
                                         newScale: { 8 / Double($0) }, threshold: threshold)
            let reference = Self.referencePrune(c, threshold: threshold, scale: s)
            let total = Self.energy(Self.referenceDeltas(c.factors, rank: c.rank, c, set: Array(0..<c.rank), scale: s), c)
            XCTAssertEqual(result.kept, reference.kept.sorted(), "trial \(trial)")
            XCTAssertEqual(result.dropped, reference.dropped, "trial \(trial)")
            XCTAssertEqual(result.totalEnergy, total, accuracy: 1e-9 * total)
            // The stored factors (new scale) lose what the reference says, and what the result reports.
            let after = Self.referenceDeltas(result.factors, rank: result.rank, c, set: Array(0..<result.rank), scale: 8 / Double(result.rank))
            let before = Self.referenceDeltas(c.factors, rank: c.rank, c, set: Array(0..<c.rank), scale: s)
            let measured = Self.energy(zip(before, after).map { zip($0, $1).map { $0 - $1 } }, c)
            XCTAssertEqual(result.lostEnergy, measured, accuracy: 1e-6 * total, "trial \(trial)")
            XCTAssertEqual(measured, reference.lost, accuracy: 1e-6 * total, "trial \(trial)")
            XCTAssertLessThanOrEqual(measured, (1 - threshold) * total + 1e-6 * total)
            if !result.dropped.isEmpty { cut += 1 }
        }
        XCTAssertGreaterThan(cut, 8)
    }

    func testThresholdOneKeepsTheFactorsBitForBit() {
        var random = TestRandom(seed: 302)
        for _ in 0..<4 {
            let c = Self.randomCase(&random)
            let result = CPPruning.prune(factors: c.factors, modes: c.modes, calibration: c.calibration, scale: 1, threshold: 1)
            XCTAssertTrue(result.unchanged)
            XCTAssertEqual(result.factors.map { $0.map(\.bitPattern) }, c.factors.map { $0.map(\.bitPattern) })
        }
    }

    /// The layer cut keeps the kept layers' ΔW exactly, also when one layer is left (its row folded into an out factor).
    func testKeepingLayersKeepsTheirDeltas() {
        var random = TestRandom(seed: 303)
        var tried = 0
        while tried < 4 {
            let c = Self.randomCase(&random)
            guard c.layers == 3 else { continue }
            tried += 1
            for kept in [[0, 2], [1]] {
                let cut = CPPruning.keepingLayers(kept, factors: c.factors, modes: c.modes)
                var d = c
                d.modes = cut.modes
                d.layers = kept.count
                let before = Self.referenceDeltas(c.factors, rank: c.rank, c, set: Array(0..<c.rank), scale: 1)
                let after = Self.referenceDeltas(cut.factors, rank: c.rank, d, set: Array(0..<c.rank), scale: 1)
                for (j, l) in kept.enumerated() {
                    for m in 0..<c.modules {
                        XCTAssertLessThan(PruningReference.relativeError(after[j * c.modules + m], before[l * c.modules + m]), 1e-6)
                    }
                }
            }
        }
    }

    /// A zero out factor (ΔW = 0, as after `init`) carries no energy: nothing is dropped.
    func testZeroTensorIsLeftAlone() {
        var random = TestRandom(seed: 304)
        var c = Self.randomCase(&random)
        let first = c.modes.firstIndex { $0.kind == .out }!
        c.factors[first] = c.factors[first].map { _ in 0 }
        let result = CPPruning.prune(factors: c.factors, modes: c.modes, calibration: c.calibration, scale: 1, threshold: 0.5)
        XCTAssertTrue(result.unchanged)
        XCTAssertEqual(result.rank, c.rank)
    }
}
