import AdaptRuntime
import AdaptTestSupport
import XCTest

/// LoftQ on low-rank-plus-noise weights: the error of Q + s·B·A, measured here
/// in float64 from the returned Q and factors, is below quantising W alone and
/// never grows; the factors are a truncated SVD of W − Q (residual orthogonal
/// to both factor spaces, √σ in each); Q_t quantises W − s·B_{t−1}·A_{t−1}.
final class LoftQTests: XCTestCase {
    let out = 48, inFeatures = 128, rank = 6

    /// A rank-`rank` signal plus uniform noise, with a few outliers (what makes
    /// blockwise quantisation lose most).
    func weight(seed: UInt64) -> [Float] {
        var random = TestRandom(seed: seed)
        let u = random.floats(out * rank), v = random.floats(rank * inFeatures)
        var w = random.floats(out * inFeatures, bound: 0.05)
        for i in 0..<out { for j in 0..<inFeatures { for k in 0..<rank {
            w[i * inFeatures + j] += u[i * rank + k] * v[k * inFeatures + j] / Float(rank)
        } } }
        for i in stride(from: 5, to: w.count, by: 211) { w[i] *= 6 }
        return w
    }

    /// ‖W − (Q + s·B·A)‖_F / ‖W‖_F in float64.
    func relativeError(_ w: [Float], q: [Float], a: [Float], b: [Float], scale: Double) -> Double {
        var missed = 0.0, total = 0.0
        for i in 0..<out { for j in 0..<inFeatures {
            var sba = 0.0
            for k in 0..<rank { sba += Double(b[i * rank + k]) * Double(a[k * inFeatures + j]) }
            let x = Double(w[i * inFeatures + j])
            missed += (x - Double(q[i * inFeatures + j]) - scale * sba) * (x - Double(q[i * inFeatures + j]) - scale * sba)
            total += x * x
        }}
        return (missed / total).squareRoot()
    }

    func run(_ w: [Float], _ quantiser: Quantiser, iterations: Int, scale: Double = 2,
             decomposition: PrincipalInit.Decomposition = .exact) throws -> LoftQ.Result {
        try w.withUnsafeBufferPointer {
            try LoftQ.initialise($0, out: out, in: inFeatures, rank: rank, scale: scale, quantiser: quantiser,
                                 iterations: iterations, decomposition: decomposition)
        }
    }

    func testErrorIsBelowQuantisationAloneAndDoesNotGrow() throws {
        let w = weight(seed: 1)
        for quantiser in [Quantiser(bits: 4, group: 64, kind: .symmetric), Quantiser(bits: 4, group: 32, kind: .nf4),
                          Quantiser(bits: 8, group: 64, kind: .symmetric)] {
            let alone = relativeError(w, q: quantiser.dequantise(try w.withUnsafeBufferPointer {
                try quantiser.quantise($0, rows: out, columns: inFeatures)
            }), a: [Float](repeating: 0, count: rank * inFeatures), b: [Float](repeating: 0, count: out * rank), scale: 1)
            let result = try run(w, quantiser, iterations: 6)
            XCTAssertEqual(result.quantisationError, alone, accuracy: 1e-9 + 1e-6 * alone)
            let measured = relativeError(w, q: quantiser.dequantise(result.quantised), a: result.a, b: result.b, scale: 2)
            XCTAssertEqual(result.relativeErrors.last!, measured, accuracy: 1e-6 * measured, "\(quantiser)")
            // The rank-r part takes the signal: far below quantising W alone.
            XCTAssertLessThan(measured, 0.7 * alone, "\(quantiser)")
            for t in 1..<result.relativeErrors.count {
                XCTAssertLessThanOrEqual(result.relativeErrors[t], result.relativeErrors[t - 1] * (1 + 1e-6),
                                         "\(quantiser) iteration \(t + 1): \(result.relativeErrors)")
            }
            XCTAssertLessThan(result.relativeErrors.last!, result.relativeErrors.first!, "\(quantiser)")
        }
    }

    /// T = 1: Q is W quantised, and s·B·A is the rank-r truncation of W − Q:
    /// the residual is orthogonal to B's columns and A's rows, and BᵀB = A·Aᵀ = diag(σ/s).
    func testOneIterationIsQuantiseThenTruncatedSVD() throws {
        let w = weight(seed: 2), scale = 2.0
        let quantiser = Quantiser(bits: 4, group: 64, kind: .nf4)
        let result = try run(w, quantiser, iterations: 1, scale: scale)
        XCTAssertEqual(result.quantised, try w.withUnsafeBufferPointer { try quantiser.quantise($0, rows: out, columns: inFeatures) })
        let q = quantiser.dequantise(result.quantised)
        var residual = [Double](repeating: 0, count: out * inFeatures)
        for i in 0..<out { for j in 0..<inFeatures {
            var sba = 0.0
            for k in 0..<rank { sba += Double(result.b[i * rank + k]) * Double(result.a[k * inFeatures + j]) }
            residual[i * inFeatures + j] = Double(w[i * inFeatures + j]) - Double(q[i * inFeatures + j]) - scale * sba
        }}
        let size = residual.map { $0 * $0 }.reduce(0, +).squareRoot()
        for k in 0..<rank {
            let bColumn = (0..<out).map { Double(result.b[$0 * rank + k]) }
            let aRow = (0..<inFeatures).map { Double(result.a[k * inFeatures + $0]) }
            for j in 0..<inFeatures {   // Bᵀ·R = 0
                let dot = (0..<out).map { bColumn[$0] * residual[$0 * inFeatures + j] }.reduce(0, +)
                XCTAssertLessThan(abs(dot), 1e-4 * size * bColumn.map { $0 * $0 }.reduce(0, +).squareRoot())
            }
            for i in 0..<out {          // R·Aᵀ = 0
                let dot = (0..<inFeatures).map { residual[i * inFeatures + $0] * aRow[$0] }.reduce(0, +)
                XCTAssertLessThan(abs(dot), 1e-4 * size * aRow.map { $0 * $0 }.reduce(0, +).squareRoot())
            }
            // BᵀB = AAᵀ = diag(σ): an entry is compared at the scale of its row's and column's σ
            // (float32 factors are orthogonal to about ε·σ, so an off-diagonal near 0 is not held
            // to 1e-4 of itself; BLAS builds that round differently put it at 1e-7 either side).
            let sigma = { [rank, out] (k: Int) in (0..<out).map { Double(result.b[$0 * rank + k]) * Double(result.b[$0 * rank + k]) }.reduce(0, +) }
            for l in 0..<rank {
                let btb = (0..<out).map { bColumn[$0] * Double(result.b[$0 * rank + l]) }.reduce(0, +)
                let aat = (0..<inFeatures).map { aRow[$0] * Double(result.a[l * inFeatures + $0]) }.reduce(0, +)
                XCTAssertEqual(btb, aat, accuracy: 1e-4 * max(abs(btb), (sigma(k) * sigma(l)).squareRoot()), "√σ split into both factors")
                if l != k { XCTAssertEqual(btb, 0, accuracy: 1e-4) }
            }
        }
    }

    /// T = 2 quantises W − s·B₁·A₁ (float64 here; float32 rounding in LoftQ's
    /// GEMM may flip an element sitting on a level boundary, nothing more).
    func testSecondIterationQuantisesWMinusFirstFactors() throws {
        let w = weight(seed: 3), scale = 2.0
        let quantiser = Quantiser(bits: 4, group: 32, kind: .symmetric)
        let first = try run(w, quantiser, iterations: 1, scale: scale), second = try run(w, quantiser, iterations: 2, scale: scale)
        var target = [Float](repeating: 0, count: out * inFeatures)
        for i in 0..<out { for j in 0..<inFeatures {
            var sba = 0.0
            for k in 0..<rank { sba += Double(first.b[i * rank + k]) * Double(first.a[k * inFeatures + j]) }
            target[i * inFeatures + j] = Float(Double(w[i * inFeatures + j]) - scale * sba)
        }}
        let expected = try target.withUnsafeBufferPointer { try quantiser.quantise($0, rows: out, columns: inFeatures) }
        XCTAssertEqual(second.quantised.scales.count, expected.scales.count)
        for (x, y) in zip(second.quantised.scales, expected.scales) { XCTAssertEqual(x, y, accuracy: 1e-5 * abs(y)) }
        let flipped = zip(second.quantised.codes, expected.codes).filter { $0 != $1 }
        XCTAssertLessThanOrEqual(flipped.count, 3)
        XCTAssertTrue(flipped.allSatisfy { abs(Int($0) - Int($1)) <= 1 })
        XCTAssertNotEqual(second.quantised, first.quantised)
    }

    func testSameSeedSameResult() throws {
        let w = weight(seed: 4), quantiser = Quantiser(bits: 4, group: 64, kind: .nf4)
        let randomized = { (seed: UInt64) in
            PrincipalInit.Decomposition.randomized(TruncatedSVD.Randomized(oversampling: 4, powerIterations: 1, seed: seed))
        }
        let one = try run(w, quantiser, iterations: 3, decomposition: randomized(7))
        let two = try run(w, quantiser, iterations: 3, decomposition: randomized(7))
        let other = try run(w, quantiser, iterations: 3, decomposition: randomized(8))
        XCTAssertEqual(one.a, two.a)
        XCTAssertEqual(one.b, two.b)
        XCTAssertEqual(one.quantised, two.quantised)
        XCTAssertNotEqual(one.a, other.a)
    }
}
