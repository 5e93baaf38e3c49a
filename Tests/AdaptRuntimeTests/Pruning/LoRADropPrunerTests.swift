import AdaptRuntime
import AdaptTestSupport
import XCTest

/// LoRA-drop's maths (DESIGN §4) against float64 references built from the
/// definitions: importance, canonical form, the lost-energy guarantee of rank
/// pruning, gauge invariance, the layer rule and the shared adapter.
final class LoRADropPrunerTests: XCTestCase {
    typealias Ref = PruningReference

    func testImportanceIsTheOutputEnergyWithoutMaterialising() {
        var random = TestRandom(seed: 1)
        let f = Ref.randomFactors(&random, out: 24, in: 20, rank: 6, scale: 1.7)
        let x = Ref.isotropicRows(&random, rows: 13, in: 20)
        let got = x.withUnsafeBufferPointer { LoRAImportance.outputEnergy(f, x: $0, rows: 13) }
        let want = Ref.outputEnergy(Ref.delta(f), out: 24, in: 20, x: x, rows: 13)
        XCTAssertEqual(got, want, accuracy: 1e-5 * want)
    }

    func testCanonicalFormIsAnSVDOfDeltaW() {
        var random = TestRandom(seed: 2)
        let f = Ref.randomFactors(&random, out: 24, in: 20, rank: 6, scale: -0.8)
        let form = LoRACanonicalForm(f)
        let c = form.components
        XCTAssertEqual(c, 6)
        var rebuilt = [Double](repeating: 0, count: 24 * 20)
        for o in 0..<24 { for i in 0..<20 { for k in 0..<c {
            rebuilt[o * 20 + i] += form.singularValues[k] * form.leftVectors[o * c + k] * form.rightVectors[i * c + k]
        } } }
        XCTAssertLessThan(Ref.relativeError(rebuilt, Ref.delta(f)), 1e-6)
        XCTAssertEqual(form.singularValues, form.singularValues.sorted(by: >))
        XCTAssertTrue(form.singularValues.allSatisfy { $0 >= 0 })
        for j in 0..<c { for k in 0..<c {
            let uu = (0..<24).reduce(0.0) { $0 + form.leftVectors[$1 * c + j] * form.leftVectors[$1 * c + k] }
            let vv = (0..<20).reduce(0.0) { $0 + form.rightVectors[$1 * c + j] * form.rightVectors[$1 * c + k] }
            XCTAssertEqual(uu, j == k ? 1 : 0, accuracy: 1e-12)
            XCTAssertEqual(vv, j == k ? 1 : 0, accuracy: 1e-12)
        } }
    }

    func testComponentEnergiesSumToTheImportance() {
        var random = TestRandom(seed: 3)
        let f = Ref.randomFactors(&random, out: 16, in: 32, rank: 8, scale: 2)
        let x = Ref.concentratedRows(&random, rows: 40, in: 32, directions: 3)
        let shares = x.withUnsafeBufferPointer { LoRACanonicalForm(f).componentEnergies(x: $0, rows: 40) }
        let want = Ref.outputEnergy(Ref.delta(f), out: 16, in: 32, x: x, rows: 40)
        XCTAssertEqual(shares.reduce(0, +), want, accuracy: 1e-9 * want)
    }

    /// The acceptance check: on random adapters and on rows isotropic or
    /// concentrated in a few directions, the calibration output energy lost by
    /// rank pruning equals the sum of the dropped shares and is ≤ 1 − T (1e-5).
    func testRankPruningLosesExactlyTheDroppedSharesAndAtMostOneMinusT() {
        var random = TestRandom(seed: 4)
        var reorderedSomewhere = false
        for concentrated in [false, true] {
            for threshold in [0.5, 0.8, 0.9, 0.99] {
                for global in [false, true] {
                    var inputs: [LoRADropPruner.PairInput] = []
                    for (layer, (out, inFeatures, rank)) in [(24, 20, 6), (16, 32, 8), (20, 20, 5)].enumerated() {
                        let f = Ref.randomFactors(&random, out: out, in: inFeatures, rank: rank, scale: 16 / Double(rank))
                        let x = concentrated ? Ref.concentratedRows(&random, rows: 30, in: inFeatures, directions: 2)
                            : Ref.isotropicRows(&random, rows: 30, in: inFeatures)
                        inputs.append(.init(layer: layer, module: "proj", factors: f, alpha: 16, rsLoRA: false, x: x, rows: 30))
                    }
                    let result = LoRADropPruner.prune(inputs, sharedRank: 8, sharedScale: 2,
                                                      options: .init(threshold: threshold, layerLevel: false, rankLevel: true, globalScope: global))
                    var groupTotal = 0.0, groupLost = 0.0
                    for (input, pair) in zip(inputs, result.pairs) {
                        let original = Ref.delta(input.factors)
                        let pruned = pair.factors!.rank == 0 ? [Double](repeating: 0, count: original.count) : Ref.delta(pair.factors!)
                        let difference = zip(original, pruned).map { $0 - $1 }
                        let (out, inFeatures) = (input.factors.outFeatures, input.factors.inFeatures)
                        let total = Ref.outputEnergy(original, out: out, in: inFeatures, x: input.x, rows: 30)
                        let lost = Ref.outputEnergy(difference, out: out, in: inFeatures, x: input.x, rows: 30)
                        let droppedShares = pair.componentEnergies.indices.filter { !pair.keptComponents.contains($0) }
                            .reduce(0.0) { $0 + pair.componentEnergies[$1] }
                        let what = "concentrated \(concentrated) T \(threshold) global \(global) pair \(pair.layer)"
                        XCTAssertEqual(lost / total, droppedShares / total, accuracy: 1e-5, what)
                        XCTAssertEqual(pair.lostEnergy / total, lost / total, accuracy: 1e-5, what)
                        if !global { XCTAssertLessThanOrEqual(lost / total, 1 - threshold + 1e-5, what) }
                        if concentrated && !global && pair.keptComponents != Array(0..<pair.keptComponents.count) { reorderedSomewhere = true }
                        groupTotal += total
                        groupLost += lost
                    }
                    XCTAssertLessThanOrEqual(groupLost / groupTotal, 1 - threshold + 1e-5, "group, T \(threshold) global \(global)")
                    // Greedy by share: within a pair (or the whole group, global) no dropped component outweighs a kept one.
                    let scopes = global ? [result.pairs] : result.pairs.map { [$0] }
                    for scope in scopes {
                        let kept = scope.flatMap { p in p.keptComponents.map { p.componentEnergies[$0] } }
                        let dropped = scope.flatMap { p in p.componentEnergies.indices.filter { !p.keptComponents.contains($0) }.map { p.componentEnergies[$0] } }
                        XCTAssertGreaterThanOrEqual(kept.min() ?? .infinity, dropped.max() ?? 0, "T \(threshold) global \(global)")
                    }
                }
            }
        }
        // Concentrated rows must make the data-weighted order differ from σ's somewhere, or the test proves little.
        XCTAssertTrue(reorderedSomewhere, "concentrated rows never reordered the components")
    }

    /// (B·G, G⁻¹·A) for a random invertible G (diagonal × rotations) changes nothing.
    func testGaugeDoesNotChangeTheResult() {
        var random = TestRandom(seed: 5)
        let (out, inFeatures, r, n) = (20, 28, 6, 25)
        let f = Ref.randomFactors(&random, out: out, in: inFeatures, rank: r, scale: 3)
        let x = Ref.concentratedRows(&random, rows: n, in: inFeatures, directions: 3)
        // G = D·Q: D diagonal in [0.2, 5], Q a product of Givens rotations; G⁻¹ = Qᵀ·D⁻¹.
        let d = (0..<r).map { _ in Double(0.2 + 4.8 * abs(random.uniform())) }
        var q = [Double](repeating: 0, count: r * r)
        for i in 0..<r { q[i * r + i] = 1 }
        for _ in 0..<12 {
            let (p, s) = (Int(random.next() % UInt64(r)), Int(random.next() % UInt64(r)))
            guard p != s else { continue }
            let angle = Double(random.uniform()) * .pi, (c, sn) = (cos(angle), sin(angle))
            for i in 0..<r {
                let (a, b) = (q[i * r + p], q[i * r + s])
                q[i * r + p] = c * a - sn * b
                q[i * r + s] = sn * a + c * b
            }
        }
        var g = [Double](repeating: 0, count: r * r), gInverse = g
        for i in 0..<r { for j in 0..<r { g[i * r + j] = d[i] * q[i * r + j]; gInverse[i * r + j] = q[j * r + i] / d[j] } }
        var b2 = [Float](repeating: 0, count: out * r), a2 = [Float](repeating: 0, count: r * inFeatures)
        for o in 0..<out { for j in 0..<r { b2[o * r + j] = Float((0..<r).reduce(0.0) { $0 + Double(f.b[o * r + $1]) * g[$1 * r + j] }) } }
        for j in 0..<r { for i in 0..<inFeatures { a2[j * inFeatures + i] = Float((0..<r).reduce(0.0) { $0 + gInverse[j * r + $1] * Double(f.a[$1 * inFeatures + i]) }) } }
        let f2 = LoRAFactors(a: a2, b: b2, rank: r, outFeatures: out, inFeatures: inFeatures, scale: 3)
        XCTAssertGreaterThan(zip(f.b, b2).map { abs($0 - $1) }.max()!, 0.1, "G must actually change the factors")

        let options = LoRADropPruner.Options(threshold: 0.85, layerLevel: false, rankLevel: true)
        let one = LoRADropPruner.prune([.init(layer: 0, module: "m", factors: f, alpha: 18, rsLoRA: false, x: x, rows: n)],
                                       sharedRank: r, sharedScale: 3, options: options).pairs[0]
        let two = LoRADropPruner.prune([.init(layer: 0, module: "m", factors: f2, alpha: 18, rsLoRA: false, x: x, rows: n)],
                                       sharedRank: r, sharedScale: 3, options: options).pairs[0]
        XCTAssertEqual(one.importance, two.importance, accuracy: 1e-5 * one.importance)
        XCTAssertEqual(one.keptComponents, two.keptComponents)
        for (s1, s2) in zip(one.componentEnergies, two.componentEnergies) { XCTAssertEqual(s1, s2, accuracy: 1e-5 * one.importance) }
        for (s1, s2) in zip(one.singularValues, two.singularValues) { XCTAssertEqual(s1, s2, accuracy: 1e-5 * one.singularValues[0]) }
        XCTAssertEqual(one.factors!.rank, two.factors!.rank)
        XCTAssertLessThan(Ref.relativeError(Ref.delta(two.factors!), Ref.delta(one.factors!)), 1e-5)
    }

    /// LoRA-drop's rule on numbers worked out by hand: rank-1 pairs whose output
    /// energy on one row x = e₀ is c², so the layer importances are 2, 10, 3, 5
    /// (shares 0.1, 0.5, 0.15, 0.25). T = 0.7: layer 1 (0.5) then layer 3 (0.75 ≥ 0.7) → keep {1, 3}.
    func testLayerLevelFollowsLoRADropOnAHandComputedExample() {
        let squares: [[Float]] = [[1, 1], [9, 1], [2, 1], [4, 1]]
        var inputs: [LoRADropPruner.PairInput] = []
        for (layer, pair) in squares.enumerated() {
            for (m, square) in pair.enumerated() {
                let f = LoRAFactors(a: [1, 0], b: [square.squareRoot(), 0], rank: 1, outFeatures: 2, inFeatures: 2, scale: 1)
                inputs.append(.init(layer: layer, module: m == 0 ? "q" : "v", factors: f, alpha: nil, rsLoRA: false, x: [1, 0], rows: 1))
            }
        }
        let options = LoRADropPruner.Options(threshold: 0.7, layerLevel: true, rankLevel: false)
        let result = LoRADropPruner.prune(inputs, sharedRank: 1, sharedScale: 1, options: options)
        XCTAssertEqual(result.keptLayers, [1, 3])
        XCTAssertEqual(result.droppedLayers, [0, 2])
        for (got, want) in zip(result.layerShares.map(\.share), [0.1, 0.5, 0.15, 0.25]) { XCTAssertEqual(got, want, accuracy: 1e-6) }
        // Kept layers: the input's factors, bit for bit.
        for (input, pair) in zip(inputs, result.pairs) where [1, 3].contains(input.layer) {
            XCTAssertEqual(pair.factors, input.factors)
            XCTAssertEqual(pair.factors!.a.map(\.bitPattern), input.factors.a.map(\.bitPattern))
            XCTAssertEqual(pair.factors!.b.map(\.bitPattern), input.factors.b.map(\.bitPattern))
        }
        XCTAssertEqual(result.sharedAdapters.map(\.module), ["q", "v"])
        // Shared q of layers 0, 2: mean of ΔW = diag(1, 0) and diag(√2, 0) → ((1 + √2)/2)·e₀e₀ᵀ.
        let q = Ref.delta(result.sharedAdapters[0].factors)
        XCTAssertEqual(q[0], (1 + 2.0.squareRoot()) / 2, accuracy: 1e-6)
        XCTAssertEqual(q[1] + q[2] + q[3], 0, accuracy: 1e-7)

        // The threshold is a closed bound, the crossing layer is kept, ties go to the lower layer.
        XCTAssertEqual(LoRADrop.keptLayers(importance: [2, 10, 3, 5], threshold: 0.5), [1])
        XCTAssertEqual(LoRADrop.keptLayers(importance: [2, 10, 3, 5], threshold: 0.75), [1, 3])
        XCTAssertEqual(LoRADrop.keptLayers(importance: [2, 10, 3, 5], threshold: 0.76), [1, 2, 3])
        XCTAssertEqual(LoRADrop.keptLayers(importance: [2, 10, 3, 5], threshold: 1), [0, 1, 2, 3])
        XCTAssertEqual(LoRADrop.keptLayers(importance: [4, 4, 2], threshold: 0.4), [0])
        XCTAssertEqual(LoRADrop.keptLayers(importance: [0, 0], threshold: 0.9), [0, 1])
    }

    /// The dropped layers' shared adapter is the rank-r truncated SVD of their
    /// mean ΔW (float64 Jacobi SVD reference), for pairs of different ranks and scales.
    func testSharedAdapterIsTheTruncatedSVDOfTheMeanDelta() {
        var random = TestRandom(seed: 6)
        let (out, inFeatures) = (24, 20)
        let deltas = [(6, 2.0), (3, 0.5), (8, 1.25)].map { Ref.randomFactors(&random, out: out, in: inFeatures, rank: $0.0, scale: $0.1) }
        var mean = [Double](repeating: 0, count: out * inFeatures)
        for f in deltas { for (i, v) in Ref.delta(f).enumerated() { mean[i] += v / Double(deltas.count) } }
        for rank in [1, 4, 8] {
            let shared = SharedAdapter.truncatedMean(of: deltas, rank: rank, scale: 16 / Double(rank))
            XCTAssertEqual(shared.rank, rank)
            XCTAssertEqual(shared.scale, 16 / Double(rank))
            let want = Ref.truncatedSVD(mean, rows: out, cols: inFeatures, rank: rank)
            XCTAssertLessThan(Ref.relativeError(Ref.delta(shared), want), 1e-5, "rank \(rank)")
        }
    }
}
