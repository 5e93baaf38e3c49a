import XCTest
import AdaptRuntime
import AdaptTestSupport

/// The ScaledGD step against a float64 transcription of its formula, and its
/// gauge invariance: after one step from (B, A) and from (B·G, G⁻¹·A) with
/// the gradients of the same loss, ΔW agrees when δ = 0 and drifts apart as δ
/// grows; AdamW's does not agree.
final class PreconditionedStepTests: XCTestCase {
    // One lora pair (r = 3, in = 5, out = 4) and a tensor-train core that gets the plain step.
    static let r = 3, n = 5, m = 4
    let layout = [
        ParameterTensor(key: "attn.0.query.A", shape: [r, n], offset: 0),
        ParameterTensor(key: "attn.0.query.B", shape: [m, r], offset: r * n),
        ParameterTensor(key: "tt.core.0", shape: [1, 2, 3], offset: r * n + m * r),
    ]
    var count: Int { Self.r * Self.n + Self.m * Self.r + 6 }

    func testFindsLoRAPairsOnly() {
        let pairs = LoRAFactorPair.pairs(in: layout)
        XCTAssertEqual(pairs.map(\.a.key), ["attn.0.query.A"])
        XCTAssertEqual(pairs.map(\.b.key), ["attn.0.query.B"])
        XCTAssertEqual([pairs[0].rank, pairs[0].inFeatures, pairs[0].outFeatures], [3, 5, 4])
    }

    func testStepMatchesFloat64Reference() throws {
        let (r, n, m) = (Self.r, Self.n, Self.m)
        var random = TestRandom(seed: 5)
        var parameters = random.floats(count)
        let gradients = random.floats(count)
        let before = parameters.map(Double.init), g = gradients.map(Double.init)
        let damping = 0.05, rate = 0.1 * 0.5, decay = 0.2
        var optimizer = PreconditionedStep(layout: layout, learningRate: 0.1, damping: damping, weightDecay: 0.2,
                                           schedule: LearningRateSchedule { _ in 0.5 })
        try step(&optimizer, &parameters, gradients)

        let a = Array(before[0..<r * n]), b = Array(before[r * n..<r * n + m * r])
        let gA = Array(g[0..<r * n]), gB = Array(g[r * n..<r * n + m * r])
        let gramA = add(multiply(a, transpose(a, r, n), r, r, n), damping, r)   // A·Aᵀ + δI
        let gramB = add(multiply(transpose(b, m, r), b, r, r, m), damping, r)   // Bᵀ·B + δI
        let dirB = multiply(gB, inverse(gramA, r), m, r, r)
        let dirA = multiply(inverse(gramB, r), gA, r, n, r)
        let direction = dirA + dirB + Array(g[r * n + m * r..<count])
        for i in 0..<count {
            let expected = before[i] * (1 - rate * decay) - rate * direction[i]
            XCTAssertEqual(Double(parameters[i]), expected, accuracy: 1e-6, "parameter \(i)")
        }
    }

    func testGaugeInvarianceAtZeroDampingAndDriftWithDamping() throws {
        let dampings = [0, 1e-3, 1e-2, 1e-1, 1]
        var deviations: [Double] = []
        for damping in dampings {
            deviations.append(try gaugeDeviation { PreconditionedStep(layout: $0, learningRate: 0.05, damping: damping) })
        }
        XCTAssertLessThanOrEqual(deviations[0], 1e-5, "ΔW after one step at δ = 0, relative: \(deviations)")
        for i in 1..<deviations.count {
            XCTAssertGreaterThan(deviations[i], deviations[i - 1], "deviation grows with δ: \(zip(dampings, deviations).map { "\($0): \($1)" })")
        }
        XCTAssertGreaterThan(deviations[1], 1e-5)
        let adam = try gaugeDeviation { AdamW(layout: $0, learningRate: 0.05, weightDecay: 0) }
        XCTAssertGreaterThan(adam, 1e-2, "plain AdamW is not gauge invariant")
    }

    func testSingularGramThrowsAndChangesNothing() throws {
        var parameters = [Float](repeating: 0, count: count)  // B = 0 and A = 0: both Grams are 0
        let gradients = [Float](repeating: 1, count: count)
        var optimizer = PreconditionedStep(layout: layout, learningRate: 0.1, damping: 0)
        XCTAssertThrowsError(try step(&optimizer, &parameters, gradients)) {
            XCTAssertEqual($0 as? AdapterError, .singularGram(key: "attn.0.query.A", damping: 0))
        }
        XCTAssertEqual(parameters, [Float](repeating: 0, count: count))
        XCTAssertEqual(optimizer.stepCount, 0)
        // With damping the step is defined: each Gram is δ·I, so A moves by −η·∂A/δ.
        optimizer.damping = 0.5
        try step(&optimizer, &parameters, gradients)
        XCTAssertEqual(Double(parameters[0]), -0.1 / 0.5, accuracy: 1e-7)
    }

    /// Relative max difference of ΔW = B·A after one step from (B, A) and from (B·G, G⁻¹·A).
    func gaugeDeviation<O: AdapterOptimizer>(_ make: ([ParameterTensor]) -> O) throws -> Double {
        let (r, n, m) = (Self.r, Self.n, Self.m)
        var random = TestRandom(seed: 17)
        let a = random.floats(r * n).map(Double.init), b = random.floats(m * r).map(Double.init)
        let c = random.floats(m * n).map(Double.init)  // loss ⟨C, B·A⟩: ∂B = C·Aᵀ, ∂A = Bᵀ·C
        var gauge = random.floats(r * r, bound: 0.4).map(Double.init)
        for i in 0..<r { gauge[i * r + i] += 1.5 }
        let gauged = (b: multiply(b, gauge, m, r, r), a: multiply(inverse(gauge, r), a, r, n, r))
        var deltas: [[Double]] = []
        for (b, a) in [(b, a), gauged] {
            let bf = b.map { Float($0) }, af = a.map { Float($0) }
            let bd = bf.map(Double.init), ad = af.map(Double.init)
            let gA = multiply(transpose(bd, m, r), c, r, n, m), gB = multiply(c, transpose(ad, r, n), m, r, n)
            var parameters = af + bf + [Float](repeating: 0, count: 6)
            let gradients = (gA + gB).map { Float($0) } + [Float](repeating: 0, count: 6)
            var optimizer = make(layout)
            try step(&optimizer, &parameters, gradients)
            deltas.append(multiply(parameters[r * n..<r * n + m * r].map(Double.init), parameters[0..<r * n].map(Double.init), m, n, r))
        }
        return maxRelativeError(deltas[1], deltas[0])
    }
}

// Small float64 helpers, row-major: an independent reference, no BLAS/LAPACK.
func multiply(_ x: [Double], _ y: [Double], _ rows: Int, _ cols: Int, _ inner: Int) -> [Double] {
    var out = [Double](repeating: 0, count: rows * cols)
    for i in 0..<rows { for j in 0..<cols { for k in 0..<inner { out[i * cols + j] += x[i * inner + k] * y[k * cols + j] } } }
    return out
}

func transpose(_ x: [Double], _ rows: Int, _ cols: Int) -> [Double] {
    var out = [Double](repeating: 0, count: rows * cols)
    for i in 0..<rows { for j in 0..<cols { out[j * rows + i] = x[i * cols + j] } }
    return out
}

func add(_ x: [Double], _ damping: Double, _ order: Int) -> [Double] {
    var out = x
    for i in 0..<order { out[i * order + i] += damping }
    return out
}

/// Gauss–Jordan with partial pivoting.
func inverse(_ x: [Double], _ order: Int) -> [Double] {
    var a = x, inv = [Double](repeating: 0, count: order * order)
    for i in 0..<order { inv[i * order + i] = 1 }
    for col in 0..<order {
        let pivot = (col..<order).max { abs(a[$0 * order + col]) < abs(a[$1 * order + col]) }!
        for k in 0..<order { a.swapAt(col * order + k, pivot * order + k); inv.swapAt(col * order + k, pivot * order + k) }
        let p = a[col * order + col]
        for k in 0..<order { a[col * order + k] /= p; inv[col * order + k] /= p }
        for row in 0..<order where row != col {
            let f = a[row * order + col]
            for k in 0..<order { a[row * order + k] -= f * a[col * order + k]; inv[row * order + k] -= f * inv[col * order + k] }
        }
    }
    return inv
}
