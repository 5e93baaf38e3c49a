import AdaptRuntime
import MiniLM
import XCTest

/// The pieces of `recover` against independent forms of the same thing: the
/// observed encoder against the fused one, an adapter applied by the observer
/// against its ΔW merged into the weights, the PiSSA start against the
/// truncation it stands for, the regression's gradient against central
/// differences of its loss. On TinyCheckpoint with the tiny specs beside this
/// file (compiled by AdaptcPlugin), so no checkpoint download is needed.
final class RecoveryTests: XCTestCase {
    static let sentences: [[Int32]] = [[2, 5, 6, 3], [2, 6, 5, 5, 6, 3], [2, 5, 3]]

    func tinyCheckpoint() throws -> Checkpoint {
        let folder = TinyCheckpoint.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try TinyCheckpoint.write(to: folder)
        return try Checkpoint.load(folder: folder)
    }

    final class Nothing: MapObserver {
        var calls = 0
        func mapped(layer: Int, map: EncoderMap, linear: any LinearMap, rows: Int, input: UnsafePointer<Float>,
                    output: UnsafeMutablePointer<Float>) throws { calls += 1 }
    }

    func testObservedPathEqualsFusedPath() throws {
        let checkpoint = try tinyCheckpoint()
        for threads in [1, 2] {
            let encoder = Encoder(weights: checkpoint.weights, threads: threads)
            let observer = Nothing()
            let observed = try encoder.embed(Self.sentences, observer: observer)
            XCTAssertEqual(observer.calls, 6 * checkpoint.weights.layers.count)
            assertClose(observed, encoder.embed(Self.sentences), 1e-6, "\(threads) threads")
        }
    }

    func testAdapterApplicationEqualsMergedWeights() throws {
        try checkApplicationEqualsMerge(TinyLoraAdapter.self)
        try checkApplicationEqualsMerge(TinyTTAdapter.self)
    }

    private func checkApplicationEqualsMerge<Adapter: GeneratedAdapter>(_ type: Adapter.Type) throws {
        let checkpoint = try tinyCheckpoint()
        let adapter = Adapter(threads: 1), binding = try AdapterBinding<Adapter>()
        var random = SeededRandom(seed: 7, stream: Adapter.specName)
        try adapter.setParameterValues((0..<Adapter.parameterCount).map { _ in random.uniform(0.5) })
        var merged = checkpoint.weights
        for map in binding.maps {
            let linear = merged.layers[0][map] as! Linear
            let delta = try adapter.materialize(layer: 0, module: binding.modules[map]!)
            XCTAssertGreaterThan(delta.map(abs).max()!, 0.01, "\(map): ΔW should not be zero")
            merged.layers[0][map] = Linear(weight: zip(linear.weight, delta).map { $0 + $1 }, bias: linear.bias,
                                           inFeatures: linear.inFeatures, outFeatures: linear.outFeatures)
        }
        let applied = try Encoder(weights: checkpoint.weights, threads: 2)
            .embed(Self.sentences, observer: AdapterApplication(adapter, binding))
        assertClose(applied, Encoder(weights: merged, threads: 2).embed(Self.sentences), 1e-5, Adapter.specName)
        let plain = Encoder(weights: checkpoint.weights, threads: 2).embed(Self.sentences)
        XCTAssertGreaterThan(zip(applied, plain).map { maxDifference($0, $1) }.max()!, 1e-3, "the adapter changed nothing")
    }

    /// lora, LoftQ with one iteration: the base keeps quantise(W) and s·B·A is the
    /// rank-r truncation of W − Q (s = alpha/r = 3 here, read back by the start).
    func testOneLoftQIterationIsTheTruncationOfWhatQuantisationLost() throws {
        let weights = try tinyCheckpoint().weights
        let quantiser = Quantiser(bits: 4, group: 4, kind: .symmetric)
        let plain = try weights.quantised(quantiser)
        var base = plain
        let adapter = TinyLoraAdapter(threads: 1), binding = try AdapterBinding<TinyLoraAdapter>()
        let report = try AdapterStart.initialise(adapter, binding, float: weights, quantised: &base, quantiser: quantiser,
                                                 iterations: 1, seed: 1)
        XCTAssertLessThan(report.startError, report.quantisationError)
        for map in EncoderMap.allCases {
            XCTAssertEqual(base.weight(layer: 0, map: map), plain.weight(layer: 0, map: map), "\(map): one iteration keeps Q")
            let d = zip(weights.weight(layer: 0, map: map), plain.weight(layer: 0, map: map)).map { $0 - $1 }
            let shape = TinyLoraAdapter.shape(of: binding.modules[map]!)
            let factors = try d.withUnsafeBufferPointer {
                try PrincipalInit.factors($0, out: shape.out, in: shape.in, rank: 2, scale: 1, method: .pissa, decomposition: .exact)
            }
            var truncation = [Double](repeating: 0, count: shape.out * shape.in)
            for i in 0..<shape.out {
                for j in 0..<shape.in {
                    for k in 0..<2 { truncation[i * shape.in + j] += Double(factors.b[i * 2 + k]) * Double(factors.a[k * shape.in + j]) }
                }
            }
            let delta = try adapter.materialize(layer: 0, module: binding.modules[map]!)
            let scale = max(truncation.map(abs).max()!, 1e-30)
            XCTAssertLessThan(zip(delta, truncation).map { abs(Double($0) - $1) }.max()! / scale, 1e-4, "\(map)")
        }
    }

    /// LoftQ with several iterations: the error it reports is ‖W − (Q_T + ΔW)‖/‖W‖ of the base and adapter it leaves.
    func testLoftQReportsTheErrorOfTheBaseAndAdapterItLeaves() throws {
        let weights = try tinyCheckpoint().weights
        let quantiser = Quantiser(bits: 4, group: 4, kind: .symmetric)
        var base = try weights.quantised(quantiser)
        let adapter = TinyLoraAdapter(threads: 1), binding = try AdapterBinding<TinyLoraAdapter>()
        let report = try AdapterStart.initialise(adapter, binding, float: weights, quantised: &base, quantiser: quantiser,
                                                 iterations: 4, seed: 1)
        var missed = 0.0, energy = 0.0
        for map in EncoderMap.allCases {
            let delta = try adapter.materialize(layer: 0, module: binding.modules[map]!)
            for (i, w) in weights.weight(layer: 0, map: map).enumerated() {
                let r = Double(w) - Double(base.weight(layer: 0, map: map)[i]) - Double(delta[i])
                missed += r * r
                energy += Double(w) * Double(w)
            }
        }
        XCTAssertEqual(report.startError, (missed / energy).squareRoot(), accuracy: 1e-5)
        XCTAssertLessThan(report.startError, report.quantisationError)
    }

    /// The gradient the regression accumulates is the gradient of the loss it reports, for one map alone.
    func testRegressionGradientMatchesCentralDifferences() throws {
        let adapter = TinyLoraAdapter(threads: 1), binding = try AdapterBinding<TinyLoraAdapter>()
        var random = SeededRandom(seed: 3, stream: "regression")
        try adapter.setParameterValues((0..<TinyLoraAdapter.parameterCount).map { _ in random.uniform(0.5) })
        let rows = 3
        let x = (0..<rows * 4).map { _ in random.uniform(1) }, base = (0..<rows * 8).map { _ in random.uniform(1) }
        let target = (0..<rows * 8).map { _ in random.uniform(1) }
        let linear = Linear(weight: [Float](repeating: 0, count: 32), bias: [Float](repeating: 0, count: 8), inFeatures: 4, outFeatures: 8)
        let targets = FloatOutputs(layers: 1, maps: [.intermediate])
        var t = target
        try t.withUnsafeMutableBufferPointer {
            try targets.mapped(layer: 0, map: .intermediate, linear: linear, rows: rows, input: x, output: $0.baseAddress!)
        }
        let regression = ActivationRegression(adapter, binding, targets: targets)
        func loss() throws -> Double {
            regression.reset()
            var y = base
            try y.withUnsafeMutableBufferPointer {
                try regression.mapped(layer: 0, map: .intermediate, linear: linear, rows: rows, input: x, output: $0.baseAddress!)
            }
            return regression.loss
        }
        adapter.zeroGradients()
        _ = try loss()
        adapter.finishBackward()
        let gradients = adapter.gradientValues
        let pair = LoRAFactorPair.pairs(in: TinyLoraAdapter.parameterLayout).first { $0.a.key.contains("intermediate") }!
        var checked = 0
        for index in [pair.a.offset, pair.a.offset + 5, pair.b.offset + 3, pair.b.offset + pair.b.count - 1] {
            var values = adapter.parameterValues
            let h: Float = 1e-2
            values[index] += h
            try adapter.setParameterValues(values)
            let up = try loss()
            values[index] -= 2 * h
            try adapter.setParameterValues(values)
            let down = try loss()
            values[index] += h
            try adapter.setParameterValues(values)
            let numeric = (up - down) / (2 * Double(h))
            XCTAssertEqual(Double(gradients[index]), numeric, accuracy: 2e-3 * max(1, abs(numeric)), "parameter \(index)")
            checked += 1
        }
        XCTAssertEqual(checked, 4)
        XCTAssertGreaterThan(gradients.map(abs).max()!, 1e-3, "no gradient reached the parameters")
    }

    func testAgreementCountsCosinesAndNeighbours() {
        let reference: [[Float]] = [[1, 0], [0.8, 0.6], [0, 1]]
        let embeddings: [[Float]] = [[1, 0], [0.6, 0.8], [0, 1]]
        let agreement = Agreement(embeddings, reference: reference)
        XCTAssertEqual(agreement.worstCosine, 0.96, accuracy: 1e-6)
        XCTAssertEqual(agreement.meanCosine, (1 + 0.96 + 1) / 3, accuracy: 1e-6)
        // Nearest of sentence 0 is 1 in both; of 2: 1 in both; of 1: 0 in the reference, 2 in the embeddings.
        XCTAssertEqual(agreement.neighbours, 2.0 / 3, accuracy: 1e-12)
    }
}

func maxDifference(_ a: [Float], _ b: [Float]) -> Float {
    precondition(a.count == b.count)
    return zip(a, b).map { $0.isNaN || $1.isNaN ? .infinity : abs($0 - $1) }.max() ?? 0
}

func assertClose(_ a: [[Float]], _ b: [[Float]], _ tolerance: Float, _ message: String,
                 file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(a.count, b.count, message, file: file, line: line)
    for (i, (x, y)) in zip(a, b).enumerated() {
        XCTAssertLessThanOrEqual(maxDifference(x, y), tolerance, "\(message): sentence \(i)", file: file, line: line)
    }
}
