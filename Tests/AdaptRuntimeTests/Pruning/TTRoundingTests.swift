import AdaptRuntime
import AdaptTestSupport
import XCTest

/// Data-weighted TT-rounding (DESIGN §4) against float64 references written
/// here from the definitions: the train multiplied out slice by slice, ΔW[l,m]
/// read off the modes, the output energy on the calibration rows by its sum
/// over rows, and plain TT-SVD (Oseledets 2011) by one-sided Jacobi SVDs.
final class TTRoundingTests: XCTestCase {
    /// A random train: layers, modules, factorised out/in, a shuffled order,
    /// random bond ranks within their bounds, and calibration rows per pair.
    struct Case {
        var modes: [TTMode]
        var ranks: [Int]
        var cores: [[Float]]
        var layers: Int
        var modules: Int
        var outFeatures: Int
        var inFeatures: Int
        var rows: [[Float]]
        var rowCounts: [Int]
        var calibration: TTCalibration {
            TTCalibration(rows: rows, counts: rowCounts, layers: layers, modules: modules, inFeatures: inFeatures)
        }
    }

    static func shuffled<T>(_ values: [T], _ random: inout TestRandom) -> [T] {
        var v = values
        for i in stride(from: v.count - 1, to: 0, by: -1) { v.swapAt(i, Int(random.next() % UInt64(i + 1))) }
        return v
    }

    /// `white`: every pair's rows are √c·I, so Σ xᵀx = c·I for one c.
    static func randomCase(_ random: inout TestRandom, modeCount: Int, white: Bool = false, maxRank: Int = 4) -> Case {
        while true {
            let layers = [1, 2, 3][Int(random.next() % 3)], modules = [1, 2][Int(random.next() % 2)]
            var modes: [TTMode] = []
            if layers > 1 { modes.append(TTMode(.layer, size: layers)) }
            if modules > 1 { modes.append(TTMode(.module, size: modules)) }
            let remaining = modeCount - modes.count
            guard remaining >= 2 else { continue }
            let outFactors = 1 + Int(random.next() % UInt64(remaining - 1)), inFactors = remaining - outFactors
            for k in 0..<outFactors { modes.append(TTMode(.out, size: 2 + Int(random.next() % 2), factor: k)) }
            for k in 0..<inFactors { modes.append(TTMode(.in, size: 2 + Int(random.next() % 2), factor: k)) }
            modes = shuffled(modes, &random)
            let sizes = modes.map(\.size)
            guard sizes.reduce(1, *) <= 1500 else { continue }
            var ranks = [1]
            for k in 1..<sizes.count {
                let bound = min(sizes[..<k].reduce(1, *), sizes[k...].reduce(1, *))
                ranks.append(min(bound, 2 + Int(random.next() % UInt64(maxRank - 1))))
            }
            ranks.append(1)
            let cores = sizes.indices.map { k in random.floats(ranks[k] * sizes[k] * ranks[k + 1]) }
            let outFeatures = modes.filter { $0.kind == .out }.reduce(1) { $0 * $1.size }
            let inFeatures = modes.filter { $0.kind == .in }.reduce(1) { $0 * $1.size }
            var rows: [[Float]] = [], counts: [Int] = []
            for _ in 0..<(layers * modules) {
                if white {
                    var x = [Float](repeating: 0, count: inFeatures * inFeatures)
                    for i in 0..<inFeatures { x[i * inFeatures + i] = 1.5 }
                    rows.append(x)
                    counts.append(inFeatures)
                } else {
                    // Rows in a few directions plus a little noise: far from white.
                    let n = 12, directions = max(1, inFeatures / 3)
                    let basis = random.floats(directions * inFeatures)
                    var x = [Float](repeating: 0, count: n * inFeatures)
                    for r in 0..<n {
                        let c = random.floats(directions)
                        for i in 0..<inFeatures {
                            var v = 0.05 * random.uniform()
                            for d in 0..<directions { v += c[d] * basis[d * inFeatures + i] }
                            x[r * inFeatures + i] = v
                        }
                    }
                    rows.append(x)
                    counts.append(n)
                }
            }
            return Case(modes: modes, ranks: ranks, cores: cores, layers: layers, modules: modules, outFeatures: outFeatures,
                        inFeatures: inFeatures, rows: rows, rowCounts: counts)
        }
    }

    // MARK: references

    /// D[j_1 … j_N] = G_1[:, j_1, :] ⋯ G_N[:, j_N, :], one index at a time.
    static func referenceDense(_ cores: [[Float]], sizes: [Int], ranks: [Int]) -> [Double] {
        let total = sizes.reduce(1, *)
        var d = [Double](repeating: 0, count: total)
        for p in 0..<total {
            var digits = [Int](repeating: 0, count: sizes.count), rest = p
            for k in sizes.indices.reversed() { digits[k] = rest % sizes[k]; rest /= sizes[k] }
            var v = [1.0]
            for k in sizes.indices {
                var next = [Double](repeating: 0, count: ranks[k + 1])
                for a in 0..<ranks[k] {
                    for b in 0..<ranks[k + 1] {
                        next[b] += v[a] * Double(cores[k][(a * sizes[k] + digits[k]) * ranks[k + 1] + b])
                    }
                }
                v = next
            }
            d[p] = v[0]
        }
        return d
    }

    /// ΔW[l·M + m] `[out, in]` (scale `s`) read off the dense tensor by its modes.
    static func referenceDeltas(_ d: [Double], _ c: Case, scale: Double = 1) -> [[Double]] {
        var deltas = [[Double]](repeating: [Double](repeating: 0, count: c.outFeatures * c.inFeatures), count: c.layers * c.modules)
        let sizes = c.modes.map(\.size)
        for p in d.indices {
            var digits = [Int](repeating: 0, count: sizes.count), rest = p
            for k in sizes.indices.reversed() { digits[k] = rest % sizes[k]; rest /= sizes[k] }
            var l = 0, m = 0, o = 0, i = 0
            let outs = c.modes.indices.filter { c.modes[$0].kind == .out }.sorted { c.modes[$0].factor < c.modes[$1].factor }
            let ins = c.modes.indices.filter { c.modes[$0].kind == .in }.sorted { c.modes[$0].factor < c.modes[$1].factor }
            for k in c.modes.indices where c.modes[k].kind == .layer { l = digits[k] }
            for k in c.modes.indices where c.modes[k].kind == .module { m = digits[k] }
            for k in outs { o = o * sizes[k] + digits[k] }
            for k in ins { i = i * sizes[k] + digits[k] }
            deltas[l * c.modules + m][o * c.inFeatures + i] = scale * d[p]
        }
        return deltas
    }

    /// Σ_{l,m} Σ_rows ‖x·ΔWᵀ‖².
    static func referenceEnergy(_ deltas: [[Double]], _ c: Case) -> Double {
        var total = 0.0
        for (b, delta) in deltas.enumerated() {
            let x = c.rows[b]
            for r in 0..<c.rowCounts[b] {
                for o in 0..<c.outFeatures {
                    var y = 0.0
                    for i in 0..<c.inFeatures { y += Double(x[r * c.inFeatures + i]) * delta[o * c.inFeatures + i] }
                    total += y * y
                }
            }
        }
        return total
    }

    static func difference(_ a: [[Double]], _ b: [[Double]]) -> [[Double]] {
        zip(a, b).map { zip($0, $1).map { $0 - $1 } }
    }

    /// Thin SVD of A `[m, n]` by one-sided Jacobi (Hestenes) on the side with
    /// fewer columns: (u `[m, k]`, σ descending, v `[n, k]`), k = min(m, n).
    static func jacobiSVD(_ a: [Double], rows m: Int, cols n: Int) -> (u: [Double], s: [Double], v: [Double]) {
        if m < n {
            var t = [Double](repeating: 0, count: m * n)
            for i in 0..<m { for j in 0..<n { t[j * m + i] = a[i * n + j] } }
            let (u, s, v) = jacobiSVD(t, rows: n, cols: m)
            return (v, s, u)
        }
        var w = a
        var v = [Double](repeating: 0, count: n * n)
        for i in 0..<n { v[i * n + i] = 1 }
        for _ in 0..<80 {
            var rotated = false
            for p in 0..<max(n - 1, 0) {
                for q in (p + 1)..<n {
                    var alpha = 0.0, beta = 0.0, gamma = 0.0
                    for i in 0..<m { alpha += w[i * n + p] * w[i * n + p]; beta += w[i * n + q] * w[i * n + q]; gamma += w[i * n + p] * w[i * n + q] }
                    guard abs(gamma) > 1e-15 * (alpha * beta).squareRoot() else { continue }
                    rotated = true
                    let zeta = (beta - alpha) / (2 * gamma)
                    let t = (zeta >= 0 ? 1.0 : -1.0) / (abs(zeta) + (1 + zeta * zeta).squareRoot())
                    let cs = 1 / (1 + t * t).squareRoot(), sn = cs * t
                    for i in 0..<m { let x = w[i * n + p], y = w[i * n + q]; w[i * n + p] = cs * x - sn * y; w[i * n + q] = sn * x + cs * y }
                    for i in 0..<n { let x = v[i * n + p], y = v[i * n + q]; v[i * n + p] = cs * x - sn * y; v[i * n + q] = sn * x + cs * y }
                }
            }
            if !rotated { break }
        }
        let norms = (0..<n).map { j in (0..<m).reduce(0.0) { $0 + w[$1 * n + j] * w[$1 * n + j] }.squareRoot() }
        let order = norms.indices.sorted { norms[$0] > norms[$1] }
        var u = [Double](repeating: 0, count: m * n), vs = [Double](repeating: 0, count: n * n)
        for (c, j) in order.enumerated() {
            for i in 0..<m { u[i * n + c] = norms[j] > 0 ? w[i * n + j] / norms[j] : 0 }
            for i in 0..<n { vs[i * n + c] = v[i * n + j] }
        }
        return (u, order.map { norms[$0] }, vs)
    }

    /// Plain TT-SVD of the dense tensor, each step keeping the smallest rank
    /// whose σ² reach `threshold` of the step's remainder (components below
    /// 1e-12 of it count as zero): the reference ranks and tensor.
    static func referenceTTSVD(_ d: [Double], sizes: [Int], threshold: Double) -> (ranks: [Int], dense: [Double]) {
        var remainder = d, r = 1, ranks = [1]
        var leftFactors: [[Double]] = []
        var rest = d.count
        for k in 0..<(sizes.count - 1) {
            let rows = r * sizes[k]
            rest /= sizes[k]
            let (u, s, v) = jacobiSVD(remainder, rows: rows, cols: rest)
            let kk = s.count, total = s.reduce(0) { $0 + $1 * $1 }
            var keep = kk, cumulative = 0.0
            for j in 0..<kk { cumulative += s[j] * s[j]; if cumulative >= (threshold - 1e-12) * total { keep = j + 1; break } }
            var left = [Double](repeating: 0, count: rows * keep)
            for i in 0..<rows { for j in 0..<keep { left[i * keep + j] = u[i * kk + j] } }
            leftFactors.append(left)
            var next = [Double](repeating: 0, count: keep * rest)
            for j in 0..<keep { for c in 0..<rest { next[j * rest + c] = s[j] * v[c * kk + j] } }
            remainder = next
            r = keep
            ranks.append(keep)
        }
        ranks.append(1)
        // Multiply back: left factors in order, then the last remainder.
        var product = leftFactors.first ?? remainder, productRows = sizes[0]
        if leftFactors.isEmpty { return (ranks, d) }
        for k in 1..<leftFactors.count {
            let columns = sizes[k] * ranks[k + 1]
            var next = [Double](repeating: 0, count: productRows * columns)
            for i in 0..<productRows { for a in 0..<ranks[k] { let x = product[i * ranks[k] + a]
                for c in 0..<columns { next[i * columns + c] += x * leftFactors[k][a * columns + c] } } }
            product = next
            productRows *= sizes[k]
        }
        let last = ranks[sizes.count - 1], columns = remainder.count / last
        var full = [Double](repeating: 0, count: productRows * columns)
        for i in 0..<productRows { for a in 0..<last { let x = product[i * last + a]
            for c in 0..<columns { full[i * columns + c] += x * remainder[a * columns + c] } } }
        return (ranks, full)
    }

    static func relativeError(_ a: [Double], _ b: [Double]) -> Double {
        let scale = max(b.map(abs).max() ?? 0, 1e-300)
        return zip(a, b).map { abs($0 - $1) }.max()! / scale
    }

    // MARK: canonical forms

    func testCanonicalFormsKeepTheTensorAndOrthogonaliseTheirCores() {
        var random = TestRandom(seed: 11)
        for modeCount in 3...6 {
            let c = Self.randomCase(&random, modeCount: modeCount)
            let sizes = c.modes.map(\.size)
            let want = Self.referenceDense(c.cores, sizes: sizes, ranks: c.ranks)
            for centre in 0..<sizes.count {
                var train = TensorTrain(cores: c.cores, sizes: sizes, ranks: c.ranks)
                TTCanonicalForm.mixed(&train, centre: centre)
                XCTAssertLessThan(Self.relativeError(train.dense(), want), 1e-12, "modes \(modeCount) centre \(centre)")
                for k in 0..<sizes.count where k != centre {
                    let (rl, n, rr) = (train.ranks[k], sizes[k], train.ranks[k + 1])
                    let core = train.cores[k]
                    // Left-orthogonal: Σ_{a,j} G[a,j,b]·G[a,j,b'] = δ; right: Σ_{j,b} G[a,j,b]·G[a',j,b] = δ.
                    let dim = k < centre ? rr : rl
                    for x in 0..<dim { for y in 0..<dim {
                        var dot = 0.0
                        if k < centre {
                            for a in 0..<rl { for j in 0..<n { dot += core[(a * n + j) * rr + x] * core[(a * n + j) * rr + y] } }
                        } else {
                            for j in 0..<n { for b in 0..<rr { dot += core[(x * n + j) * rr + b] * core[(y * n + j) * rr + b] } }
                        }
                        XCTAssertEqual(dot, x == y ? 1 : 0, accuracy: 1e-12, "core \(k) centre \(centre)")
                    } }
                }
            }
        }
    }

    // MARK: rounding

    /// White calibration (Σ xᵀx = c·I): data-weighted rounding is plain TT-rounding.
    func testWhiteCalibrationIsPlainTTRounding() {
        var random = TestRandom(seed: 12)
        var cutSomewhere = false
        for trial in 0..<12 {
            let c = Self.randomCase(&random, modeCount: 3 + trial % 4, white: true, maxRank: 5)
            let sizes = c.modes.map(\.size)
            let dense = Self.referenceDense(c.cores, sizes: sizes, ranks: c.ranks)
            for threshold in [0.7, 0.9, 0.99] {
                let result = TTRounding.round(cores: c.cores, ranks: c.ranks, modes: c.modes, calibration: c.calibration, scale: 1,
                                              options: .init(threshold: threshold))
                let want = Self.referenceTTSVD(dense, sizes: sizes, threshold: threshold)
                let what = "trial \(trial) modes \(c.modes.map { "\($0.kind)\($0.factor)=\($0.size)" }) T \(threshold)"
                XCTAssertEqual(result.ranks, want.ranks, what)
                let got = Self.referenceDense(result.cores, sizes: sizes, ranks: result.ranks)
                XCTAssertLessThan(Self.relativeError(got, want.dense), 1e-5, what)
                if result.ranks != c.ranks { cutSomewhere = true }
            }
        }
        XCTAssertTrue(cutSomewhere)
    }

    /// The acceptance identity: the output energy the rounded train loses on
    /// the calibration rows (reference: ΔW from its cores, summed over rows)
    /// is the energy the result says was dropped, to 1e-6 of the total; with
    /// scope pair no bond loses more than 1 − T.
    func testLostEnergyOnTheRowsIsWhatTheResultReports() {
        var random = TestRandom(seed: 13)
        var coupledCut = false
        for trial in 0..<16 {
            let c = Self.randomCase(&random, modeCount: 3 + trial % 4)
            let sizes = c.modes.map(\.size)
            let alpha = 4 + 4 * Double(trial % 3), scale = alpha / Double(c.ranks.max()!)
            let original = Self.referenceDeltas(Self.referenceDense(c.cores, sizes: sizes, ranks: c.ranks), c, scale: scale)
            let total = Self.referenceEnergy(original, c)
            for threshold in [0.6, 0.9] {
                for global in [false, true] {
                    // Standard scaling, s = alpha/r_max: the change of scale is folded into the cores.
                    let result = TTRounding.round(cores: c.cores, ranks: c.ranks, modes: c.modes, calibration: c.calibration,
                                                  scale: scale, newScale: { alpha / Double($0) },
                                                  options: .init(threshold: threshold, globalScope: global))
                    let newScale = alpha / Double(result.ranks.max()!)
                    let pruned = Self.referenceDeltas(Self.referenceDense(result.cores, sizes: sizes, ranks: result.ranks), c, scale: newScale)
                    let lost = Self.referenceEnergy(Self.difference(original, pruned), c)
                    let what = "trial \(trial) T \(threshold) global \(global)"
                    XCTAssertEqual(result.totalEnergy / total, 1, accuracy: 1e-9, what)
                    XCTAssertEqual(result.lostEnergy / total, lost / total, accuracy: 1e-6, what)
                    // Global: one budget for the train; pair: 1 − T per bond (DESIGN §4), a total of up to N − 1 times that.
                    XCTAssertLessThanOrEqual(lost / total, Double(global ? 1 : sizes.count - 1) * (1 - threshold) + 1e-6, what)
                    if !global {
                        for (k, bond) in result.bonds.enumerated() {
                            XCTAssertLessThanOrEqual(bond.lostEnergy / total, 1 - threshold + 1e-6, "\(what) bond \(k)")
                            if bond.exactWeighting {
                                let dropped = bond.energies.dropFirst(bond.rankAfter).reduce(0, +)
                                XCTAssertEqual(bond.lostEnergy, dropped, accuracy: 1e-9 * total, "\(what) bond \(k)")
                            } else if bond.rankAfter < bond.rankBefore {
                                coupledCut = true
                            }
                        }
                    }
                }
            }
        }
        XCTAssertTrue(coupledCut, "some coupled bond should have been cut")
    }

    /// Orders whose every bond has the weighted modes on one side: each bond's
    /// dropped σ² is exactly what the rows lose there, and the bonds' losses
    /// add up to the group's (the cuts are orthogonal projections in the weighted norm).
    func testExactBondsLoseTheirDroppedSpectrumAndAddUp() {
        var random = TestRandom(seed: 14)
        let orders: [[TTMode]] = [
            [TTMode(.out, size: 3, factor: 0), TTMode(.out, size: 4, factor: 1), TTMode(.out, size: 2, factor: 2), TTMode(.in, size: 9)],
            [TTMode(.in, size: 8), TTMode(.out, size: 2, factor: 1), TTMode(.out, size: 3, factor: 0), TTMode(.out, size: 3, factor: 2)],
        ]
        for (index, modes) in orders.enumerated() {
            var c = Self.randomCase(&random, modeCount: 4)
            c.modes = modes
            c.layers = 1
            c.modules = 1
            let sizes = modes.map(\.size)
            c.ranks = [1] + (1..<sizes.count).map { k in min(4, sizes[..<k].reduce(1, *), sizes[k...].reduce(1, *)) } + [1]
            c.cores = sizes.indices.map { k in random.floats(c.ranks[k] * sizes[k] * c.ranks[k + 1]) }
            c.inFeatures = modes.filter { $0.kind == .in }.reduce(1) { $0 * $1.size }
            c.outFeatures = modes.filter { $0.kind == .out }.reduce(1) { $0 * $1.size }
            let basis = random.floats(2 * c.inFeatures)
            c.rows = [(0..<(10 * c.inFeatures)).map { p in
                let (r, i) = (p / c.inFeatures, p % c.inFeatures)
                return Float(r % 3) * basis[i] + Float(r % 5) * basis[c.inFeatures + i] + 0.01 * random.uniform()
            }]
            c.rowCounts = [10]
            let result = TTRounding.round(cores: c.cores, ranks: c.ranks, modes: c.modes, calibration: c.calibration, scale: 1,
                                          options: .init(threshold: 0.8))
            let original = Self.referenceDeltas(Self.referenceDense(c.cores, sizes: sizes, ranks: c.ranks), c)
            let pruned = Self.referenceDeltas(Self.referenceDense(result.cores, sizes: sizes, ranks: result.ranks), c)
            let total = Self.referenceEnergy(original, c), lost = Self.referenceEnergy(Self.difference(original, pruned), c)
            XCTAssertTrue(result.bonds.allSatisfy(\.exactWeighting), "order \(index)")
            XCTAssertNotEqual(result.ranks, c.ranks, "order \(index): something must be cut")
            XCTAssertEqual(result.bonds.map(\.lostEnergy).reduce(0, +) / total, lost / total, accuracy: 1e-6, "order \(index)")
            for bond in result.bonds {
                XCTAssertEqual(bond.lostEnergy, bond.energies.dropFirst(bond.rankAfter).reduce(0, +), accuracy: 1e-12 * total)
            }
        }
    }

    func testMinimalRanksComeBackBitForBit() {
        var random = TestRandom(seed: 15)
        for modeCount in 3...6 {
            let c = Self.randomCase(&random, modeCount: modeCount)
            let result = TTRounding.round(cores: c.cores, ranks: c.ranks, modes: c.modes, calibration: c.calibration, scale: 2,
                                          newScale: { _ in 3 }, options: .init(threshold: 1))
            XCTAssertTrue(result.unchanged, "modes \(modeCount)")
            XCTAssertEqual(result.ranks, c.ranks)
            XCTAssertEqual(result.cores.map { $0.map(\.bitPattern) }, c.cores.map { $0.map(\.bitPattern) })
            XCTAssertEqual(result.lostEnergy, 0)
        }
    }

    /// A train of true ranks t written with larger bonds (G_k ← B·G_k·A, A·B = I
    /// on the true bond) rounds back to t at threshold 1 and keeps its tensor.
    func testRankDeficientTrainRoundsToItsTrueRanks() {
        var random = TestRandom(seed: 16)
        let modes = [TTMode(.layer, size: 4), TTMode(.out, size: 3, factor: 0), TTMode(.in, size: 5, factor: 0), TTMode(.out, size: 2, factor: 1),
                     TTMode(.in, size: 4, factor: 1)]
        let sizes = modes.map(\.size)
        let trueRanks = [1, 2, 3, 2, 2, 1], padded = [1, 4, 6, 5, 4, 1]
        let cores = sizes.indices.map { k in random.floats(trueRanks[k] * sizes[k] * trueRanks[k + 1]) }
        // A_k = [I | M_k] [t, R] and B_k = [I; 0] [R, t]: A·B = I.
        let mixers = (0...sizes.count).map { k in random.floats(trueRanks[k] * max(padded[k] - trueRanks[k], 0)) }
        var wide: [[Float]] = []
        for k in sizes.indices {
            let (t0, t1, r0, r1, n) = (trueRanks[k], trueRanks[k + 1], padded[k], padded[k + 1], sizes[k])
            var core = [Float](repeating: 0, count: r0 * n * r1)
            for a in 0..<t0 { for j in 0..<n { for b in 0..<r1 {
                var v: Float = 0
                for c in 0..<t1 {
                    let g = cores[k][(a * n + j) * t1 + c]
                    v += g * (b < t1 ? (b == c ? 1 : 0) : mixers[k + 1][c * (r1 - t1) + b - t1])
                }
                core[(a * n + j) * r1 + b] = v
            } } }
            wide.append(core)
        }
        var rows: [[Float]] = [], counts: [Int] = []
        for _ in 0..<4 { rows.append(random.floats(30 * 20)); counts.append(30) }
        let calibration = TTCalibration(rows: rows, counts: counts, layers: 4, modules: 1, inFeatures: 20)
        let result = TTRounding.round(cores: wide, ranks: padded, modes: modes, calibration: calibration, scale: 1,
                                      options: .init(threshold: 1))
        XCTAssertEqual(result.ranks, trueRanks)
        let want = Self.referenceDense(wide, sizes: sizes, ranks: padded)
        XCTAssertLessThan(Self.relativeError(Self.referenceDense(result.cores, sizes: sizes, ranks: result.ranks), want), 1e-5)
        XCTAssertLessThan(result.lostEnergy, 1e-9 * result.totalEnergy)
    }

    func testKeptRankIsTheSmallestReachingTheThreshold() {
        XCTAssertEqual(TTRounding.keptRank([6, 3, 1], threshold: 0.6), 1)
        XCTAssertEqual(TTRounding.keptRank([6, 3, 1], threshold: 0.61), 2)
        XCTAssertEqual(TTRounding.keptRank([6, 3, 1], threshold: 1), 3)
        XCTAssertEqual(TTRounding.keptRank([6, 4, 1e-20], threshold: 1), 2)
        XCTAssertEqual(TTRounding.keptRank([0, 0], threshold: 0.5), 2)
    }
}
