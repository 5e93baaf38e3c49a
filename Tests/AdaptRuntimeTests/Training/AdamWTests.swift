import XCTest
import AdaptRuntime
import AdaptTestSupport

/// AdamW against a float64 transcription of Loshchilov & Hutter's Algorithm 2
/// (PyTorch's order: decoupled decay, then the bias-corrected Adam update).
final class AdamWTests: XCTestCase {
    let layout = [ParameterTensor(key: "g.0.m.A", shape: [2, 3], offset: 0), ParameterTensor(key: "g.core.0", shape: [5], offset: 6)]

    /// Step 1 by hand: m̂ = g and v̂ = g², so the update is η·g/(|g|+ε).
    func testFirstStepByHand() throws {
        var optimizer = AdamW(layout: [ParameterTensor(key: "p", shape: [2], offset: 0)], learningRate: 0.1, weightDecay: 0.01)
        var parameters: [Float] = [1, -2]
        let gradients: [Float] = [0.5, -4]
        try step(&optimizer, &parameters, gradients)
        // 1·(1 − 0.1·0.01) − 0.1·0.5/(0.5 + 1e-8);  −2·(1 − 0.001) − 0.1·(−4)/(4 + 1e-8)
        XCTAssertEqual(Double(parameters[0]), 0.999 - 0.1 * 0.5 / (0.5 + 1e-8), accuracy: 1e-7)
        XCTAssertEqual(Double(parameters[1]), -1.998 + 0.1 * 4 / (4 + 1e-8), accuracy: 1e-7)
        XCTAssertEqual(optimizer.stepCount, 1)
    }

    func testStepsMatchFloat64Reference() throws {
        var random = TestRandom(seed: 3)
        let schedule = LearningRateSchedule { t in [1, 0.5, 0.25, 2][(t - 1) % 4] }
        var optimizer = AdamW(layout: layout, learningRate: 0.01, beta1: 0.8, beta2: 0.95, epsilon: 1e-6,
                              weightDecay: 0.1, schedule: schedule)
        var parameters = random.floats(11)
        var reference = parameters.map(Double.init)
        var m = [Double](repeating: 0, count: 11), v = m
        for t in 1...4 {
            let gradients = random.floats(11, bound: 2)
            try step(&optimizer, &parameters, gradients)
            let rate = 0.01 * [1, 0.5, 0.25, 2][t - 1]
            for i in 0..<11 {
                let g = Double(gradients[i])
                m[i] = 0.8 * m[i] + 0.2 * g
                v[i] = 0.95 * v[i] + 0.05 * g * g
                let mHat = m[i] / (1 - pow(0.8, Double(t))), vHat = v[i] / (1 - pow(0.95, Double(t)))
                reference[i] = reference[i] * (1 - rate * 0.1) - rate * mHat / (vHat.squareRoot() + 1e-6)
            }
            for i in 0..<11 { XCTAssertEqual(Double(parameters[i]), reference[i], accuracy: 2e-7, "step \(t) parameter \(i)") }
        }
    }

    func testSameInputsSameBits() throws {
        func run() throws -> [Float] {
            var random = TestRandom(seed: 9)
            var optimizer = AdamW(layout: layout, learningRate: 0.03, schedule: .warmupCosine(warmup: 2, total: 6))
            var parameters = random.floats(11)
            for _ in 0..<6 { try step(&optimizer, &parameters, random.floats(11)) }
            return parameters
        }
        XCTAssertEqual(try run().map(\.bitPattern), try run().map(\.bitPattern))
    }

    func testBadArgumentsChangeNothing() throws {
        var optimizer = AdamW(layout: layout)
        var parameters = [Float](repeating: 1, count: 11)
        var gradients = [Float](repeating: 0.5, count: 11)
        gradients[7] = .nan
        XCTAssertThrowsError(try step(&optimizer, &parameters, gradients)) { error in
            XCTAssertEqual(error as? AdapterError, .nonFiniteGradient(key: "g.core.0", index: 7))
        }
        XCTAssertThrowsError(try step(&optimizer, &parameters, [Float](repeating: 0, count: 10))) { error in
            XCTAssertEqual(error as? AdapterError, .parameterCountMismatch(count: 10, expected: 11))
        }
        XCTAssertEqual(parameters, [Float](repeating: 1, count: 11))
        XCTAssertEqual(optimizer.stepCount, 0)
    }

    func testWarmupCosineSchedule() {
        let schedule = LearningRateSchedule.warmupCosine(warmup: 4, total: 12, floor: 0.1)
        XCTAssertEqual(schedule(1), 0.25)
        XCTAssertEqual(schedule(4), 1)
        XCTAssertEqual(Double(schedule(8)), 0.1 + 0.9 * 0.5, accuracy: 1e-6)
        XCTAssertEqual(Double(schedule(12)), 0.1, accuracy: 1e-6)
        XCTAssertEqual(Double(schedule(40)), 0.1, accuracy: 1e-6)
    }
}

/// One optimizer step on arrays.
func step<O: AdapterOptimizer>(_ optimizer: inout O, _ parameters: inout [Float], _ gradients: [Float]) throws {
    try parameters.withUnsafeMutableBufferPointer { p in
        try gradients.withUnsafeBufferPointer { g in try optimizer.step(parameters: p, gradients: g) }
    }
}
