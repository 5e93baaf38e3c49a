import XCTest
import AdaptRuntime
import GeneratedAdapters
import AdaptTestSupport

/// The optimizers driven through a generated adapter: the adapter form of a
/// step includes gradients of prepared state (it runs `finishBackward()`), and
/// the next forward sees the updated parameters (prepared state re-computed).
final class AdapterTrainingTests: XCTestCase {
    func testStepOnTensorTrainIncludesPreparedGradientsAndReprepares() throws {
        var random = TestRandom(seed: 41)
        let values = random.floats(MetaTTBertAdapter.parameterCount, bound: 0.5)
        let x = random.floats(2 * 768), dy = random.floats(2 * 768)
        func trained(explicitFinish: Bool) throws -> MetaTTBertAdapter {
            let adapter = MetaTTBertAdapter(threads: 1)
            let parameters = adapter.parameters
            for i in values.indices { parameters[i] = values[i] }
            adapter.zeroGradients()
            _ = try adapter.backward(layer: 3, module: .value, x: x, dy: dy, rows: 2)
            var optimizer = AdamW(for: MetaTTBertAdapter.self, learningRate: 0.01)
            if explicitFinish {
                adapter.finishBackward()
                let gradients = Array(adapter.gradients)
                try gradients.withUnsafeBufferPointer { try optimizer.step(parameters: adapter.parameters, gradients: $0) }
            } else {
                try optimizer.step(adapter)  // must run finishBackward itself
            }
            return adapter
        }
        let implicit = try trained(explicitFinish: false), explicit = try trained(explicitFinish: true)
        XCTAssertEqual(Array(implicit.parameters).map(\.bitPattern), Array(explicit.parameters).map(\.bitPattern))
        XCTAssertNotEqual(Array(implicit.parameters), values, "the step changed something")

        // Forward after the step = forward of a fresh adapter holding the stepped parameters.
        let fresh = MetaTTBertAdapter(threads: 1)
        let freshParameters = fresh.parameters
        for i in freshParameters.indices { freshParameters[i] = implicit.parameters[i] }
        let y = try implicit.forward(layer: 5, module: .query, x: x, rows: 2)
        XCTAssertEqual(y, try fresh.forward(layer: 5, module: .query, x: x, rows: 2))
    }

    func testZeroGradientsClearsPreparedGradientsToo() throws {
        let adapter = MetaTTBertAdapter(threads: 1)
        var random = TestRandom(seed: 43)
        let parameters = adapter.parameters
        for i in parameters.indices { parameters[i] = random.uniform(0.5) }
        _ = try adapter.backward(layer: 0, module: .key, x: random.floats(768), dy: random.floats(768), rows: 1)
        adapter.zeroGradients()
        adapter.finishBackward()
        XCTAssertEqual(adapter.gradientNorm(), 0)
    }

    /// A LoRA adapter fitted to a random low-rank teacher by both optimizers: the loss falls.
    func testBothOptimizersReduceTheLoss() throws {
        for preconditioned in [false, true] {
            let adapter = TinyQvAdapter(threads: 1)
            var random = TestRandom(seed: 47)
            let parameters = adapter.parameters
            for tensor in TinyQvAdapter.parameterLayout {
                for i in tensor.offset..<tensor.offset + tensor.count { parameters[i] = random.uniform(0.1) }
            }
            // A rank-4 teacher ΔW = U·V, within the adapter's rank 8.
            let u = random.floats(64 * 4, bound: 0.5), v = random.floats(4 * 64, bound: 0.5)
            var teacher = [Float](repeating: 0, count: 64 * 64)
            for o in 0..<64 { for i in 0..<64 { for k in 0..<4 { teacher[o * 64 + i] += u[o * 4 + k] * v[k * 64 + i] } } }
            var optimizer: any AdapterOptimizer = preconditioned
                ? PreconditionedStep(for: TinyQvAdapter.self, learningRate: 0.05, damping: 1e-3)
                : AdamW(for: TinyQvAdapter.self, learningRate: 0.01, weightDecay: 0)
            var losses: [Double] = []
            for _ in 0..<60 {
                let n = 16
                let x = random.floats(n * 64)
                var target = [Float](repeating: 0, count: n * 64)
                for row in 0..<n { for o in 0..<64 { for i in 0..<64 { target[row * 64 + o] += x[row * 64 + i] * teacher[o * 64 + i] } } }
                adapter.zeroGradients()
                let y = try adapter.forward(layer: 1, module: .attentionSelfQuery, x: x, rows: n)
                let residual = zip(y, target).map { $0 - $1 }
                losses.append(residual.reduce(0) { $0 + Double($1 * $1) } / Double(n))
                _ = try adapter.backward(layer: 1, module: .attentionSelfQuery, x: x, dy: residual.map { 2 * $0 / Float(n) }, rows: n)
                try optimizer.step(adapter)
            }
            XCTAssertLessThan(losses.last!, losses.first! * 0.1, "preconditioned \(preconditioned): \(losses)")
        }
    }
}
