import XCTest
import AdaptRuntime
@testable import AdaptcCore
import GeneratedAdapters
import AdaptTestSupport

/// `train:` (DESIGN §3) on Specs/frozen-factors.adapt.yaml: LoRA-FA (`train:
/// [out]`, the A's frozen) and a tensor-train whose out and in cores are frozen
/// (`train: [layer, module]`). Backward — per pair, fused, then finishBackward,
/// generated and interpreted — leaves every frozen gradient exactly zero and
/// gives every other gradient and dx as the same spec without `train:` does
/// (its plan run by the interpreter: the reference); AdamW and
/// PreconditionedStep leave the frozen parameters bitwise unchanged.
final class FrozenTensorTests: XCTestCase {
    typealias Adapter = FrozenFactorsAdapter
    let file = "frozen-factors.adapt.yaml"

    private func plans() throws -> (frozen: Plan, everything: Plan) {
        let frozen = try XCTUnwrap(Planner.plan(try SpecLoader.load(path: specPath(file))).0)
        // The same spec with its `train:` lines removed: everything learns.
        let text = try String(contentsOfFile: specPath(file), encoding: .utf8)
        let untrained = text.split(separator: "\n", omittingEmptySubsequences: false)
            .filter { !$0.trimmingCharacters(in: .whitespaces).hasPrefix("train:") }.joined(separator: "\n")
        XCTAssertNotEqual(untrained, text)
        let everything = try XCTUnwrap(Planner.plan(try SpecLoader.check(source: untrained, path: file)).0)
        return (frozen, everything)
    }

    private var frozenRanges: [Range<Int>] {
        Adapter.parameterLayout.filter { !$0.trainable }.map { $0.offset..<($0.offset + $0.count) }
    }

    func testLayoutMarksTheFrozenTensors() throws {
        let frozen = Adapter.parameterLayout.filter { !$0.trainable }.map(\.key)
        let expected = (0..<3).flatMap { l in ["fa.\(l).query.A", "fa.\(l).key.A"] } + ["lotr.core.0", "lotr.core.3"]
        XCTAssertEqual(frozen, expected)
        // The plan the interpreter runs says the same.
        let (plan, everything) = try plans()
        XCTAssertEqual(plan.parameters, Adapter.parameterLayout)
        XCTAssertTrue(everything.parameters.allSatisfy(\.trainable))
        XCTAssertEqual(everything.parameters.map(\.key), plan.parameters.map(\.key))
    }

    func testBackwardLeavesFrozenGradientsExactlyZero() throws {
        let (plan, everything) = try plans()
        XCTAssertFalse(plan.groups.flatMap(\.layerBackwards).isEmpty, "the spec has a fused backward to check")
        // The steps of the frozen gradients (and what only they read) are gone.
        func steps(_ p: Plan) -> Int { p.groups.reduce(0) { $0 + $1.pairs.reduce(0) { $0 + $1.backward.contractions.count } + $1.finishBackward.contractions.count } }
        XCTAssertLessThan(steps(plan), steps(everything))
        for threads in [1, 2] {
            let adapter = Adapter(threads: threads)
            let interpreter = PlanInterpreter(plan: plan, threads: threads)
            let reference = PlanInterpreter(plan: everything, threads: threads)
            var random = TestRandom(seed: 5)
            let values = random.floats(Adapter.parameterCount, bound: 0.5)
            for i in values.indices {
                adapter.parameters[i] = values[i]
                interpreter.storage.parameters[i] = values[i]
                reference.storage.parameters[i] = values[i]
            }
            let modules = Array(Adapter.Module.allCases)
            for layer in 0..<3 {
                let n = layer == 0 ? 70 : 3  // row blocks and one block
                let x = random.floats(n * 24)
                var dxs: [[Float]] = []
                // Each pair alone, then the fused backward of the modules that read one input.
                for module in modules {
                    let dy = random.floats(n * Adapter.shape(of: module).out)
                    let name = Adapter.moduleName(module)
                    dxs.append(try adapter.backward(layer: layer, module: module, x: x, dy: dy, rows: n))
                    for executor in [interpreter, reference] {
                        var dx = [Float](repeating: 0, count: n * 24)
                        try x.withUnsafeBufferPointer { xb in try dy.withUnsafeBufferPointer { dyb in
                            try dx.withUnsafeMutableBufferPointer {
                                try executor.backward(layer: layer, module: name, x: xb, dy: dyb, rows: n, dx: $0)
                            } } }
                        dxs.append(dx)
                    }
                    for dx in dxs.suffix(2) { assertClose(dxs[dxs.count - 3], dx.map(Double.init), "dx \(layer).\(name), \(threads) threads") }
                }
                for fused in plan.groups.flatMap(\.layerBackwards) where fused.layer == layer {
                    let cases = fused.modules.map { m in modules.first { Adapter.moduleName($0) == m }! }
                    let dys = cases.map { random.floats(n * Adapter.shape(of: $0).out) }
                    var results: [[Float]] = []
                    for run in 0..<3 {
                        var dx = [Float](repeating: 0, count: n * 24)
                        try withBuffers(dys) { dyb in
                            try x.withUnsafeBufferPointer { xb in try dx.withUnsafeMutableBufferPointer {
                                switch run {
                                case 0: try adapter.backward(layer: layer, modules: cases, x: xb, dys: dyb, rows: n, dx: $0)
                                case 1: try interpreter.backwardLayer(layer: layer, modules: fused.modules, x: xb, dys: dyb, rows: n, dx: $0)
                                default: try reference.backwardLayer(layer: layer, modules: fused.modules, x: xb, dys: dyb, rows: n, dx: $0)
                                }
                            } }
                        }
                        results.append(dx)
                    }
                    for dx in results.dropFirst() { assertClose(results[0], dx.map(Double.init), "fused dx \(layer)") }
                }
            }
            adapter.finishBackward()
            interpreter.finishBackward()
            reference.finishBackward()
            let expected = Array(reference.storage.gradients)
            for (what, gradients) in [("generated", Array(adapter.gradients)), ("interpreter", Array(interpreter.storage.gradients))] {
                for range in frozenRanges {
                    XCTAssertTrue(gradients[range].allSatisfy { $0.bitPattern == 0 }, "\(what): a frozen gradient at \(range) was written")
                    XCTAssertTrue(expected[range].contains { $0 != 0 }, "the reference gives \(range) a gradient")
                }
                // Every other gradient is the one the unfrozen spec computes.
                var trainable = gradients, reference = expected
                for range in frozenRanges { for i in range { trainable[i] = 0; reference[i] = 0 } }
                assertClose(trainable, reference.map(Double.init), "\(what) trainable gradients, \(threads) threads")
            }
        }
    }

    func testOptimizersLeaveFrozenTensorsUnchanged() throws {
        var random = TestRandom(seed: 9)
        let start = random.floats(Adapter.parameterCount, bound: 0.5)
        // Gradients everywhere, frozen tensors included: the optimizers must ignore those.
        let gradients = random.floats(Adapter.parameterCount, bound: 1)
        var adamW = AdamW(for: Adapter.self, learningRate: 1e-2)
        var preconditioned = PreconditionedStep(for: Adapter.self, learningRate: 1e-2, weightDecay: 0.1)
        for name in ["AdamW", "PreconditionedStep"] {
            var parameters = start
            try parameters.withUnsafeMutableBufferPointer { p in
                try gradients.withUnsafeBufferPointer { g in
                    for _ in 0..<2 {
                        if name == "AdamW" { try adamW.step(parameters: p, gradients: g) } else { try preconditioned.step(parameters: p, gradients: g) }
                    }
                }
            }
            for tensor in Adapter.parameterLayout {
                let range = tensor.offset..<(tensor.offset + tensor.count)
                let same = zip(parameters[range], start[range]).allSatisfy { $0.bitPattern == $1.bitPattern }
                if tensor.trainable {
                    XCTAssertFalse(same, "\(name) did not update \(tensor.key)")
                } else {
                    XCTAssertTrue(same, "\(name) changed the frozen \(tensor.key)")
                }
            }
        }
    }

    private func withBuffers(_ arrays: [[Float]], _ body: ([UnsafeBufferPointer<Float>]) throws -> Void) throws {
        let buffers = arrays.map { a -> UnsafeMutableBufferPointer<Float> in
            let b = UnsafeMutableBufferPointer<Float>.allocate(capacity: a.count)
            _ = b.initialize(from: a)
            return b
        }
        defer { buffers.forEach { $0.deallocate() } }
        try body(buffers.map { UnsafeBufferPointer($0) })
    }
}
