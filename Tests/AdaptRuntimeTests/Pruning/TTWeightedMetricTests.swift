@testable import AdaptRuntime
import AdaptTestSupport
import XCTest

/// The rows-based metric of the rounding (`TTWeightedMetric`) against the
/// float64 references of TTRoundingTests (dense tensor, ΔW read off the modes,
/// Σ over rows): at every bond of a sweep, on random trains with permuted and
/// factorised modes, the loss `Bond.loss(keeping: j)` of keeping the first j
/// components is what cutting the bond there loses on the rows, for every j;
/// so the gauge tracking of the segment (bonds before it), the fresh
/// contractions inside it (either side weighted, the mirror) and the
/// environments after it are each checked where they are used.
final class TTWeightedMetricTests: XCTestCase {
    func testEveryCandidateCutLosesWhatPhiSays() {
        var random = TestRandom(seed: 41)
        var inside = 0, outside = 0, preparedBonds = 0
        for trial in 0..<20 {
            var c = TTRoundingTests.randomCase(&random, modeCount: 3 + trial % 4)
            // Trials not 0 mod 4: the in modes last, in factor order (tt-xlayer's layout), so the
            // first pass can prepare the bonds inside the segment.
            if trial % 4 != 0 { c = Self.inModesLast(c, &random) }
            let sizes = c.modes.map(\.size)
            // Odd trials stream the rows in blocks of 5 (12 rows per pair: three blocks).
            var calibration = c.calibration
            if trial % 2 == 1 { calibration.blockRows = 5 }
            let metric = TTWeightedMetric(calibration: calibration, modes: c.modes, threads: 1 + trial % 2)
            var train = TensorTrain(cores: c.cores, sizes: sizes, ranks: c.ranks)
            // Trials not 0 mod 4: the bonds inside the segment prepared by the first pass (as `round` does).
            let prepare = trial % 4 != 0
            var (reference, prepared) = metric.project(train, preparing: prepare ? metric.preparableBonds(train) : [])
            preparedBonds += prepared.count
            let inModes = c.modes.indices.filter { c.modes[$0].kind == .in }
            for k in 1..<sizes.count {
                let bond = metric.analyse(&train, bond: k, reference: &reference, prepared: prepared)
                let r = train.ranks[k]
                XCTAssertEqual(bond.energies.count, r)
                let now = Self.energy(train, c)
                let what = "trial \(trial) modes \(c.modes.map { "\($0.kind)\($0.factor)=\($0.size)" }) bond \(k)"
                XCTAssertEqual(bond.loss(keeping: 0), now, accuracy: 1e-9 * max(now, 1), what)
                for keep in 0..<r {
                    var cut = train
                    let v = TTRounding.columns(bond.basis, rows: r, keep: keep)
                    // I − V·Vᵀ at the bond: what keeping `keep` components drops.
                    var complement = DenseLinearAlgebra.multiply(v, v, m: r, n: r, k: keep, transB: true).map { -$0 }
                    for i in 0..<r { complement[i * r + i] += 1 }
                    let rows = cut.ranks[k - 1] * cut.sizes[k - 1]
                    cut.cores[k - 1] = DenseLinearAlgebra.multiply(cut.cores[k - 1], complement, m: rows, n: r, k: r)
                    XCTAssertEqual(bond.loss(keeping: keep), Self.energy(cut, c), accuracy: 1e-9 * max(now, 1), "\(what) keep \(keep)")
                }
                if k > inModes.first! && k <= inModes.last! { inside += 1 } else { outside += 1 }
                // Cut the bond by one, as the sweep would, so later bonds see a changed train.
                if r > 1 { train.project(bond: k, onto: TTRounding.columns(bond.basis, rows: r, keep: r - 1), columns: r - 1) }
            }
        }
        XCTAssertGreaterThan(inside, 5)
        XCTAssertGreaterThan(outside, 5)
        XCTAssertGreaterThan(preparedBonds, 2)
    }

    /// A projection reused through a one-sided gauge change equals a fresh one.
    func testGaugeTrackedGramsEqualFreshOnes() {
        var random = TestRandom(seed: 42)
        var tracked = 0
        for trial in 0..<12 {
            let c = TTRoundingTests.randomCase(&random, modeCount: 4 + trial % 3)
            let metric = TTWeightedMetric(calibration: c.calibration, modes: c.modes, threads: 1)
            let start = metric.segment.lowerBound
            guard start > 0 else { continue }
            var train = TensorTrain(cores: c.cores, sizes: c.modes.map(\.size), ranks: c.ranks)
            var reference = metric.project(train)
            TTCanonicalForm.leftOrthogonalise(&train, upTo: start)
            let before = reference.cores
            let grams = metric.grams(for: train, reference: &reference)
            if reference.cores == before { tracked += 1 }
            let fresh = metric.project(train).gram
            for (g, f) in zip(grams, fresh) {
                let scale = f.map(abs).max() ?? 1
                for (a, b) in zip(g, f) { XCTAssertEqual(a, b, accuracy: 1e-9 * max(scale, 1e-300), "trial \(trial)") }
            }
        }
        XCTAssertGreaterThan(tracked, 3, "the gauge change should have been tracked, not recomputed")
    }

    /// The case with its in modes moved to the end in factor order, new cores.
    static func inModesLast(_ c: TTRoundingTests.Case, _ random: inout TestRandom) -> TTRoundingTests.Case {
        var c = c
        c.modes = c.modes.filter { $0.kind != .in } + c.modes.filter { $0.kind == .in }.sorted { $0.factor < $1.factor }
        let sizes = c.modes.map(\.size)
        c.ranks = [1] + (1..<sizes.count).map { k in min(3, sizes[..<k].reduce(1, *), sizes[k...].reduce(1, *)) } + [1]
        c.cores = sizes.indices.map { k in random.floats(c.ranks[k] * sizes[k] * c.ranks[k + 1]) }
        return c
    }

    /// Σ over pairs and rows of ‖x·ΔWᵀ‖², by the float64 references.
    static func energy(_ train: TensorTrain, _ c: TTRoundingTests.Case) -> Double {
        let dense = train.dense()
        return TTRoundingTests.referenceEnergy(TTRoundingTests.referenceDeltas(dense, c), c)
    }
}
