import AdaptRuntime
import AdaptTestSupport
import XCTest

/// Data-weighted Tucker rounding (DESIGN §4) against float64 references
/// written here from the definitions: the core multiplied out by naive mode
/// products, ΔW[l,m] read off the modes, and the output energy on the
/// calibration rows by its sum over rows.
final class TuckerRoundingTests: XCTestCase {
    struct Case {
        var modes: [TTMode]
        var core: [Float]
        var factors: [[Float]?]
        var layers: Int
        var modules: Int
        var outFeatures: Int
        var inFeatures: Int
        var rows: [[Float]]
        var counts: [Int]
        var calibration: TTCalibration { TTCalibration(rows: rows, counts: counts, layers: layers, modules: modules, inFeatures: inFeatures) }
        var ranks: [Int?] { zip(modes, factors).map { m, u in u.map { $0.count / m.size } } }
    }

    /// A random Tucker group: layers, modules, factorised out/in, a shuffled
    /// order, some modes full; the core decays along every mode so thresholds
    /// below 1 cut. `factored`: which kinds get a factor (the rest are full).
    static func randomCase(_ random: inout TestRandom, factored: Set<TTMode.Kind> = [.layer, .module, .out, .in],
                           rowCount: Int = 12) -> Case {
        let layers = [1, 2, 3][Int(random.next() % 3)], modules = [1, 2][Int(random.next() % 2)]
        var modes: [TTMode] = []
        if layers > 1 { modes.append(TTMode(.layer, size: layers)) }
        if modules > 1 { modes.append(TTMode(.module, size: modules)) }
        let outFactors = 1 + Int(random.next() % 2), inFactors = 1 + Int(random.next() % 2)
        for k in 0..<outFactors { modes.append(TTMode(.out, size: 3 + Int(random.next() % 2), factor: k)) }
        for k in 0..<inFactors { modes.append(TTMode(.in, size: 3 + Int(random.next() % 2), factor: k)) }
        var shuffled = modes
        for i in stride(from: shuffled.count - 1, to: 0, by: -1) { shuffled.swapAt(i, Int(random.next() % UInt64(i + 1))) }
        modes = shuffled
        var factors: [[Float]?] = []
        for m in modes {
            // Full about one time in four (always where the kind is not factored).
            let full = !factored.contains(m.kind) || random.next() % 4 == 0
            let rank = full ? m.size : max(1, m.size - Int(random.next() % 2))
            factors.append(full ? nil : random.floats(m.size * rank))
        }
        let coreSizes = zip(modes, factors).map { m, u in u.map { $0.count / m.size } ?? m.size }
        var core = random.floats(coreSizes.reduce(1, *))
        for p in core.indices {
            var rest = p, weight: Float = 1
            for k in coreSizes.indices.reversed() { weight /= Float(1 + rest % coreSizes[k]); rest /= coreSizes[k] }
            core[p] *= weight
        }
        let outFeatures = modes.filter { $0.kind == .out }.reduce(1) { $0 * $1.size }
        let inFeatures = modes.filter { $0.kind == .in }.reduce(1) { $0 * $1.size }
        var rows: [[Float]] = [], counts: [Int] = []
        for _ in 0..<(layers * modules) {
            let directions = max(2, inFeatures / 2), basis = random.floats(directions * inFeatures)
            var x = [Float](repeating: 0, count: rowCount * inFeatures)
            for r in 0..<rowCount {
                let c = random.floats(directions)
                for i in 0..<inFeatures { x[r * inFeatures + i] = 0.05 * random.uniform() + (0..<directions).reduce(0) { $0 + c[$1] * basis[$1 * inFeatures + i] } }
            }
            rows.append(x)
            counts.append(rowCount)
        }
        return Case(modes: modes, core: core, factors: factors, layers: layers, modules: modules, outFeatures: outFeatures,
                    inFeatures: inFeatures, rows: rows, counts: counts)
    }

    // MARK: references

    /// D = C ×ₖ U_k by naive mode products, row-major over the modes.
    static func referenceDense(_ core: [Float], _ factors: [[Float]?], modes: [TTMode]) -> [Double] {
        var values = core.map(Double.init)
        var sizes = zip(modes, factors).map { m, u in u.map { $0.count / m.size } ?? m.size }
        for k in modes.indices {
            guard let u = factors[k] else { continue }
            let r = sizes[k], n = modes[k].size
            let before = sizes[..<k].reduce(1, *), after = sizes[(k + 1)...].reduce(1, *)
            var next = [Double](repeating: 0, count: before * n * after)
            for a in 0..<before { for j in 0..<n { for c in 0..<r { let w = Double(u[j * r + c])
                for b in 0..<after { next[(a * n + j) * after + b] += w * values[(a * r + c) * after + b] } } } }
            values = next
            sizes[k] = n
        }
        return values
    }

    /// ΔW[l·M + m] `[out, in]` (times `scale`) read off the dense tensor.
    static func referenceDeltas(_ d: [Double], _ c: Case, scale: Double) -> [[Double]] {
        var deltas = [[Double]](repeating: [Double](repeating: 0, count: c.outFeatures * c.inFeatures), count: c.layers * c.modules)
        let sizes = c.modes.map(\.size)
        let outs = c.modes.indices.filter { c.modes[$0].kind == .out }.sorted { c.modes[$0].factor < c.modes[$1].factor }
        let ins = c.modes.indices.filter { c.modes[$0].kind == .in }.sorted { c.modes[$0].factor < c.modes[$1].factor }
        for p in d.indices {
            var digits = [Int](repeating: 0, count: sizes.count), rest = p
            for k in sizes.indices.reversed() { digits[k] = rest % sizes[k]; rest /= sizes[k] }
            var l = 0, m = 0, o = 0, i = 0
            for k in c.modes.indices where c.modes[k].kind == .layer { l = digits[k] }
            for k in c.modes.indices where c.modes[k].kind == .module { m = digits[k] }
            for k in outs { o = o * sizes[k] + digits[k] }
            for k in ins { i = i * sizes[k] + digits[k] }
            deltas[l * c.modules + m][o * c.inFeatures + i] = scale * d[p]
        }
        return deltas
    }

    /// Σ_rows ‖x·ΔWᵀ‖² per pair.
    static func referenceEnergies(_ deltas: [[Double]], _ c: Case) -> [Double] {
        deltas.enumerated().map { b, delta in
            PruningReference.outputEnergy(delta, out: c.outFeatures, in: c.inFeatures, x: c.rows[b], rows: c.counts[b])
        }
    }

    static func referenceLoss(_ c: Case, _ result: TuckerRounding.Result, scale: Double, newScale: Double) -> (lost: Double, total: Double) {
        let before = referenceDeltas(referenceDense(c.core, c.factors, modes: c.modes), c, scale: scale)
        let after = referenceDeltas(referenceDense(result.core, result.factors, modes: c.modes), c, scale: newScale)
        let lost = referenceEnergies(zip(before, after).map { zip($0, $1).map { $0 - $1 } }, c).reduce(0, +)
        return (lost, referenceEnergies(before, c).reduce(0, +))
    }

    static func scale(_ rank: Int) -> Double { 6 / Double(rank) }

    // MARK: tests

    /// The energy identity: what the report says was lost is what the
    /// calibration rows lose (to 1e-6 of the total), for either scope; with
    /// `--scope pair` no mode's cut loses more than 1 − T of the total.
    func testLostEnergyIsWhatTheCalibrationRowsLose() {
        var random = TestRandom(seed: 251)
        var cut = 0
        for trial in 0..<24 {
            let c = Self.randomCase(&random)
            let threshold = [0.6, 0.8, 0.95][trial % 3], global = trial % 2 == 1
            let s = Self.scale(c.ranks.compactMap { $0 }.max() ?? 1)
            let result = TuckerRounding.round(core: c.core, factors: c.factors, modes: c.modes, calibration: c.calibration, scale: s,
                                              newScale: Self.scale, options: .init(threshold: threshold, globalScope: global))
            let newScale = Self.scale(result.ranks.compactMap { $0 }.max() ?? 1)
            let (lost, total) = Self.referenceLoss(c, result, scale: s, newScale: newScale)
            XCTAssertEqual(result.totalEnergy, total, accuracy: 1e-9 * total, "trial \(trial)")
            XCTAssertEqual(result.lostEnergy, lost, accuracy: 1e-6 * total, "trial \(trial)")
            XCTAssertLessThanOrEqual(lost, (1 - threshold) * total * (global ? 1 : Double(c.modes.count)) + 1e-6 * total, "trial \(trial)")
            if !global {
                for mode in result.modes { XCTAssertLessThanOrEqual(mode.lostEnergy, (1 - threshold) * total + 1e-6 * total, "trial \(trial)") }
            }
            // Full modes stay full; the others' ranks never grow.
            for (k, r) in result.ranks.enumerated() {
                XCTAssertEqual(r == nil, c.ranks[k] == nil)
                if let r, let before = c.ranks[k] { XCTAssertLessThanOrEqual(r, before) }
            }
            if !result.unchanged { cut += 1 }
        }
        XCTAssertGreaterThan(cut, 12, "most trials must cut something")
    }

    /// Where every factor is an out mode's, every cut is exact: each mode's
    /// lost energy is the sum of its dropped spectrum, and they add up to what
    /// the rows lose (the sequential cuts' errors are orthogonal).
    func testExactModesLoseExactlyTheirDroppedEnergies() {
        var random = TestRandom(seed: 252)
        for trial in 0..<10 {
            let c = Self.randomCase(&random, factored: [.out])
            let s = Self.scale(c.ranks.compactMap { $0 }.max() ?? 1)
            let result = TuckerRounding.round(core: c.core, factors: c.factors, modes: c.modes, calibration: c.calibration, scale: s,
                                              newScale: { _ in s }, options: .init(threshold: 0.8))
            let (lost, total) = Self.referenceLoss(c, result, scale: s, newScale: s)
            var dropped = 0.0
            for (k, mode) in result.modes.enumerated() where mode.rankBefore != nil {
                XCTAssertTrue(mode.exactWeighting, "out mode \(k)")
                XCTAssertEqual(mode.lostEnergy, mode.energies.dropFirst(mode.rankAfter!).reduce(0, +), accuracy: 1e-12 * total)
                dropped += mode.lostEnergy
            }
            XCTAssertEqual(dropped, lost, accuracy: 1e-6 * total, "trial \(trial)")
            // The first mode sees the input: its spectrum sums to the whole energy.
            if let first = result.modes.first, first.rankBefore != nil {
                XCTAssertEqual(first.energies.reduce(0, +), total, accuracy: 1e-9 * total)
            }
        }
    }

    /// Threshold 1 on a tensor of minimal ranks with rows spanning `in`: nothing is cut, bit for bit.
    func testMinimalRanksComeBackBitForBit() {
        var random = TestRandom(seed: 253)
        for trial in 0..<6 {
            let c = Self.randomCase(&random, rowCount: 40)
            let result = TuckerRounding.round(core: c.core, factors: c.factors, modes: c.modes, calibration: c.calibration, scale: 2,
                                              newScale: Self.scale, options: .init(threshold: 1))
            XCTAssertTrue(result.unchanged, "trial \(trial) \(result.ranks) \(c.ranks)")
            XCTAssertEqual(result.core.map(\.bitPattern), c.core.map(\.bitPattern))
            XCTAssertEqual(result.lostEnergy, 0)
        }
    }

    /// A core whose out-mode unfolding has rank 2 under a rank-3 factor rounds
    /// to rank 2 at threshold 1, losing nothing; the result's factors are orthonormal.
    func testRankDeficientModeRoundsToItsTrueRank() {
        var random = TestRandom(seed: 254)
        var c = Self.randomCase(&random, factored: [.out, .in], rowCount: 40)
        let k = c.modes.firstIndex { $0.kind == .out && $0.size >= 3 }!
        c.factors[k] = random.floats(c.modes[k].size * 3)
        let sizes = zip(c.modes, c.factors).map { m, u in u.map { $0.count / m.size } ?? m.size }
        var core = random.floats(sizes.reduce(1, *))
        // Slice 2 of mode k = slice 0 + slice 1: the unfolding has rank 2.
        let after = sizes[(k + 1)...].reduce(1, *), before = sizes[..<k].reduce(1, *)
        for a in 0..<before { for b in 0..<after {
            core[(a * 3 + 2) * after + b] = core[(a * 3) * after + b] + core[(a * 3 + 1) * after + b]
        } }
        c.core = core
        let result = TuckerRounding.round(core: c.core, factors: c.factors, modes: c.modes, calibration: c.calibration, scale: 1,
                                          options: .init(threshold: 1))
        XCTAssertEqual(result.ranks[k], 2, "\(result.ranks)")
        let (lost, total) = Self.referenceLoss(c, result, scale: 1, newScale: 1)
        XCTAssertLessThan(lost, 1e-9 * total)
        for (j, u) in result.factors.enumerated() {
            guard let u, let r = result.ranks[j] else { continue }
            let n = c.modes[j].size
            for x in 0..<r { for y in 0..<r {
                let dot = (0..<n).reduce(0.0) { $0 + Double(u[$1 * r + x]) * Double(u[$1 * r + y]) }
                XCTAssertEqual(dot, x == y ? 1 : 0, accuracy: 1e-6, "factor \(j)")
            } }
        }
    }

    /// The layer cut keeps the kept layers' ΔW exactly, with a layer factor or
    /// a full layer mode, also when one layer is left (the mode goes).
    func testKeepingLayersKeepsTheirDeltas() {
        var random = TestRandom(seed: 255)
        var tried = 0
        while tried < 6 {
            let c = Self.randomCase(&random)
            guard c.layers == 3 else { continue }
            tried += 1
            for kept in [[0, 2], [1]] {
                let cut = TuckerTensor(core: c.core, factors: c.factors, modes: c.modes).keepingLayers(kept)
                var d = c
                d.modes = cut.modes
                d.layers = kept.count
                let before = Self.referenceDeltas(Self.referenceDense(c.core, c.factors, modes: c.modes), c, scale: 1)
                let after = Self.referenceDeltas(Self.referenceDense(cut.core.map { Float($0) }, cut.factors.map { $0?.map { Float($0) } },
                                                                     modes: cut.modes), d, scale: 1)
                for (j, l) in kept.enumerated() {
                    for m in 0..<c.modules {
                        XCTAssertLessThan(PruningReference.relativeError(after[j * c.modules + m], before[l * c.modules + m]), 1e-6)
                    }
                }
            }
        }
    }

    /// A zero core (ΔW = 0, as after `init`) carries no energy: nothing is cut.
    func testZeroTensorIsLeftAlone() {
        var random = TestRandom(seed: 256)
        var coupled = 0
        for trial in 0..<12 {
            let global = trial % 2 == 1
            var c = Self.randomCase(&random)
            if zip(c.modes, c.factors).contains(where: { ($0.kind == .layer || $0.kind == .module) && $1 != nil }) { coupled += 1 }
            c.core = c.core.map { _ in 0 }
            let result = TuckerRounding.round(core: c.core, factors: c.factors, modes: c.modes, calibration: c.calibration, scale: 1,
                                              options: .init(threshold: 0.5, globalScope: global))
            XCTAssertTrue(result.unchanged, "\(result.ranks) \(c.ranks)")
        }
        XCTAssertGreaterThan(coupled, 3, "cases with a factored layer or module mode")
    }

    /// Plain sequentially truncated HOSVD of the dense tensor in mode order: at
    /// each non-full mode the leading left singular vectors of the current
    /// unfolding (one-sided Jacobi) whose σ² reach `threshold` of its total
    /// (shares below 1e-12 count as zero), projected onto.
    static func referenceSTHOSVD(_ d: [Double], modes: [TTMode], full: [Bool], threshold: Double) -> (ranks: [Int?], dense: [Double]) {
        var t = d
        var ranks: [Int?] = []
        let sizes = modes.map(\.size)
        for k in modes.indices {
            guard !full[k] else { ranks.append(nil); continue }
            let n = sizes[k], before = sizes[..<k].reduce(1, *), after = sizes[(k + 1)...].reduce(1, *)
            var unfolding = [Double](repeating: 0, count: n * before * after)
            for a in 0..<before { for j in 0..<n { for b in 0..<after { unfolding[j * before * after + a * after + b] = t[(a * n + j) * after + b] } } }
            let (u, sv, _) = TTRoundingTests.jacobiSVD(unfolding, rows: n, cols: before * after)
            let columns = sv.count, total = sv.reduce(0) { $0 + $1 * $1 }
            var keep = columns, cumulative = 0.0
            for j in 0..<columns { cumulative += sv[j] * sv[j]; if cumulative >= (threshold - 1e-12) * total { keep = j + 1; break } }
            ranks.append(keep)
            var projection = [Double](repeating: 0, count: n * n)
            for i in 0..<n { for i2 in 0..<n { for j in 0..<keep { projection[i * n + i2] += u[i * columns + j] * u[i2 * columns + j] } } }
            var next = [Double](repeating: 0, count: t.count)
            for a in 0..<before { for i in 0..<n { for i2 in 0..<n { let w = projection[i * n + i2]; if w == 0 { continue }
                for b in 0..<after { next[(a * n + i) * after + b] += w * t[(a * n + i2) * after + b] } } } }
            t = next
        }
        return (ranks, t)
    }

    /// With white calibration rows (Σ xᵀx = c·I for every pair) every mode's
    /// weighting, coupled or not, is a multiple of the plain one: the result is
    /// plain ST-HOSVD of the weights (float64 reference), ranks and tensor.
    func testWhiteCalibrationIsPlainSequentialHOSVD() {
        var random = TestRandom(seed: 257)
        var cut = 0
        for trial in 0..<10 {
            var c = Self.randomCase(&random)
            c.rows = c.rows.indices.map { _ in
                var x = [Float](repeating: 0, count: c.inFeatures * c.inFeatures)
                for i in 0..<c.inFeatures { x[i * c.inFeatures + i] = 1.5 }
                return x
            }
            c.counts = c.counts.map { _ in c.inFeatures }
            let threshold = [0.7, 0.85, 0.95][trial % 3]
            let result = TuckerRounding.round(core: c.core, factors: c.factors, modes: c.modes, calibration: c.calibration, scale: 1,
                                              options: .init(threshold: threshold))
            let d = Self.referenceDense(c.core, c.factors, modes: c.modes)
            let reference = Self.referenceSTHOSVD(d, modes: c.modes, full: c.factors.map { $0 == nil }, threshold: threshold)
            XCTAssertEqual(result.ranks, reference.ranks, "trial \(trial)")
            let got = Self.referenceDense(result.core, result.factors, modes: c.modes)
            XCTAssertLessThan(TTRoundingTests.relativeError(got, reference.dense), 1e-5, "trial \(trial)")
            if result.ranks != c.ranks { cut += 1 }
        }
        XCTAssertGreaterThan(cut, 5)
    }

    /// One pair and one `in` mode: the in mode's data-weighted spectrum is exact
    /// — it sums to the output energy, and its cut (the only one: out stays
    /// full) loses exactly its dropped tail on the calibration rows.
    func testInModeOfASinglePairIsExact() {
        var random = TestRandom(seed: 258)
        var tried = 0
        while tried < 6 {
            let c = Self.randomCase(&random, factored: [.in])
            guard c.layers == 1, c.modules == 1, c.modes.filter({ $0.kind == .in }).count == 1,
                  let k = c.modes.firstIndex(where: { $0.kind == .in }), c.factors[k] != nil else { continue }
            tried += 1
            let result = TuckerRounding.round(core: c.core, factors: c.factors, modes: c.modes, calibration: c.calibration, scale: 1,
                                              options: .init(threshold: 0.8))
            let mode = result.modes[k]
            let (lost, total) = Self.referenceLoss(c, result, scale: 1, newScale: 1)
            XCTAssertTrue(mode.exactWeighting)
            XCTAssertEqual(mode.energies.reduce(0, +), total, accuracy: 1e-9 * total)
            XCTAssertEqual(mode.energies.dropFirst(mode.rankAfter!).reduce(0, +), lost, accuracy: 1e-6 * total)
            XCTAssertLessThan(mode.rankAfter!, mode.rankBefore!)
        }
    }
}
