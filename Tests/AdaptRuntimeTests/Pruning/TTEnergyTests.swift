import AdaptRuntime
import AdaptTestSupport
import XCTest

/// The contracted output energy of a train (never the dense tensor) against
/// the float64 references of TTRoundingTests (dense tensor, ΔW read off the
/// modes, Σ over rows), and data-weighted rounding on a shape whose dense
/// tensor would be large, against a per-pair reference.
final class TTEnergyTests: XCTestCase {
    func testContractedPairEnergiesMatchTheDenseReference() {
        var random = TestRandom(seed: 29)
        for trial in 0..<24 {
            let c = TTRoundingTests.randomCase(&random, modeCount: 3 + trial % 4)
            let sizes = c.modes.map(\.size)
            let deltas = TTRoundingTests.referenceDeltas(TTRoundingTests.referenceDense(c.cores, sizes: sizes, ranks: c.ranks), c)
            let train = TensorTrain(cores: c.cores, sizes: sizes, ranks: c.ranks)
            let got = c.calibration.pairEnergies(train, modes: c.modes)
            for b in deltas.indices {
                var one = c
                one.rows = [c.rows[b]]
                one.rowCounts = [c.rowCounts[b]]
                let want = TTRoundingTests.referenceEnergy([deltas[b]], one)
                XCTAssertEqual(got[b], want, accuracy: 1e-9 * max(want, 1), "trial \(trial) pair \(b) modes \(c.modes)")
            }
            // The difference train: E(D − c·D') against the dense difference.
            let other = TTRoundingTests.randomCase(&random, modeCount: sizes.count)
            guard other.modes == c.modes else { continue }
            let second = TensorTrain(cores: other.cores, sizes: sizes, ranks: other.ranks)
            let otherDeltas = TTRoundingTests.referenceDeltas(TTRoundingTests.referenceDense(other.cores, sizes: sizes, ranks: other.ranks), c)
            let want = TTRoundingTests.referenceEnergy(TTRoundingTests.difference(deltas, otherDeltas.map { $0.map { 0.5 * $0 } }), c)
            let diff = c.calibration.pairEnergies(train.minus(second, times: 0.5), modes: c.modes).reduce(0, +)
            XCTAssertEqual(diff, want, accuracy: 1e-9 * max(want, 1), "trial \(trial) difference")
        }
    }

    /// 4 layers × 2 modules at 384², order [out, layer, in, module]: every bond
    /// couples weighted modes, so every cut is measured. The dense tensor
    /// (1.2 M entries) is never formed by the rounding; the reference builds one
    /// pair's ΔW `[out, in]` at a time from the cores and sums over the rows.
    func testRoundingOnALargeCoupledShapeLosesWhatItReports() {
        var random = TestRandom(seed: 31)
        let layers = 4, modules = 2, out = 384, inFeatures = 384, n = 24
        let modes = [TTMode(.out, size: out), TTMode(.layer, size: layers), TTMode(.in, size: inFeatures), TTMode(.module, size: modules)]
        let ranks = [1, 6, 6, 2, 1]
        let sizes = modes.map(\.size)
        let cores = sizes.indices.map { k in random.floats(ranks[k] * sizes[k] * ranks[k + 1]) }
        var rows: [[Float]] = []
        for _ in 0..<(layers * modules) {
            // Rows in a few directions: far from white, so the weighting matters.
            let basis = random.floats(8 * inFeatures)
            var x = [Float](repeating: 0, count: n * inFeatures)
            for r in 0..<n {
                let coefficients = random.floats(8)
                for i in 0..<inFeatures { for d in 0..<8 { x[r * inFeatures + i] += coefficients[d] * basis[d * inFeatures + i] } }
            }
            rows.append(x)
        }
        let calibration = TTCalibration(rows: rows, counts: Array(repeating: n, count: rows.count), layers: layers, modules: modules,
                                        inFeatures: inFeatures)
        let result = TTRounding.round(cores: cores, ranks: ranks, modes: modes, calibration: calibration, scale: 1,
                                      options: .init(threshold: 0.8))
        XCTAssertFalse(result.unchanged)
        XCTAssertLessThan(result.bondRanks.reduce(0, +), ranks.reduce(0, +) - 2)
        for l in 0..<layers {
            for m in 0..<modules {
                let b = l * modules + m
                let before = Self.pairDelta(cores, ranks: ranks, sizes: sizes, layer: l, module: m)
                let after = Self.pairDelta(result.cores, ranks: result.ranks, sizes: sizes, layer: l, module: m)
                let energy = Self.rowsEnergy(before, rows[b], n: n, out: out, inFeatures: inFeatures)
                let lost = Self.rowsEnergy(zip(before, after).map { $0 - $1 }, rows[b], n: n, out: out, inFeatures: inFeatures)
                XCTAssertEqual(result.pairEnergies[b], energy, accuracy: 1e-9 * energy, "pair \(b)")
                XCTAssertEqual(result.pairLostEnergies[b], lost, accuracy: 1e-6 * result.totalEnergy, "pair \(b)")
            }
        }
    }

    /// ΔW[l, m] `[out, in]` for the order [out, layer, in, module]:
    /// `Σ G_1[0, o, a] G_2[a, l, b] G_3[b, i, c] G_4[c, m, 0]`, in float64 loops.
    static func pairDelta(_ cores: [[Float]], ranks: [Int], sizes: [Int], layer l: Int, module m: Int) -> [Double] {
        let (out, layers, inFeatures, modules) = (sizes[0], sizes[1], sizes[2], sizes[3])
        let (r1, r2, r3) = (ranks[1], ranks[2], ranks[3])
        // left[o, b] = Σ_a G1[o, a] G2[a, l, b]; right[b, i] = Σ_c G3[b, i, c] G4[c, m].
        var left = [Double](repeating: 0, count: out * r2), right = [Double](repeating: 0, count: r2 * inFeatures)
        for o in 0..<out { for a in 0..<r1 { for b in 0..<r2 {
            left[o * r2 + b] += Double(cores[0][o * r1 + a]) * Double(cores[1][(a * layers + l) * r2 + b])
        } } }
        for b in 0..<r2 { for i in 0..<inFeatures { for c in 0..<r3 {
            right[b * inFeatures + i] += Double(cores[2][(b * inFeatures + i) * r3 + c]) * Double(cores[3][c * modules + m])
        } } }
        var delta = [Double](repeating: 0, count: out * inFeatures)
        for o in 0..<out { for b in 0..<r2 { let v = left[o * r2 + b]
            for i in 0..<inFeatures { delta[o * inFeatures + i] += v * right[b * inFeatures + i] }
        } }
        return delta
    }

    /// Σ_rows ‖x·ΔWᵀ‖².
    static func rowsEnergy(_ delta: [Double], _ x: [Float], n: Int, out: Int, inFeatures: Int) -> Double {
        var total = 0.0
        for r in 0..<n {
            for o in 0..<out {
                var y = 0.0
                for i in 0..<inFeatures { y += Double(x[r * inFeatures + i]) * delta[o * inFeatures + i] }
                total += y * y
            }
        }
        return total
    }
}
