import XCTest
import AdaptRuntime
@testable import AdaptcCore
import GeneratedAdapters
import AdaptTestSupport

/// The generated code and the plan interpreter run the same kernels on the
/// same sub-shapes (`KernelStep`: one description of each lowered step), so
/// they agree to the bit, not to a tolerance: every entry point of every
/// example spec — forward, backward and materialize per pair, the fused
/// forward and backward of each layer's modules, `finishBackward` — at n =
/// 1 and 40 (GEMV; row blocks on both threads), on the first and last layer
/// of each spec (the layers between run the same kernels at other offsets,
/// which `Tools/check-generated-bits` covers). DoRA's pairs need the base and
/// are left to `DoRAGeneratedTests`.
final class InterpreterBitsTests: XCTestCase {
    func testBenchSpecs() throws {
        try check(BenchCpXLayerAdapter.self, "bench-cp-xlayer.adapt.yaml")
        try check(BenchDecodeAdapter.self, "bench-decode.adapt.yaml")
        try check(BenchLoraXLayerAdapter.self, "bench-lora-xlayer.adapt.yaml")
        try check(BenchLoraAdapter.self, "bench-lora.adapt.yaml")
        try check(BenchLoTRXLayerAdapter.self, "bench-lotr-xlayer.adapt.yaml")
        try check(BenchTTXLayerAdapter.self, "bench-tt-xlayer.adapt.yaml")
    }

    func testExampleSpecs() throws {
        try check(BertDroppedAdapter.self, "bert-dropped.adapt.yaml")
        try check(BertQvAdapter.self, "bert-qv.adapt.yaml")
        try check(FrozenFactorsAdapter.self, "frozen-factors.adapt.yaml")
        try check(LoRTACpAdapter.self, "lorta-cp.adapt.yaml")
        try check(LoTRTuckerAdapter.self, "lotr-tucker.adapt.yaml")
        try check(MetaTTBertAdapter.self, "metatt-bert.adapt.yaml")
        try check(MixedMlpAdapter.self, "mixed-mlp.adapt.yaml")
        try check(TinyQvAdapter.self, "tiny-qv.adapt.yaml")
        try check(TTFactoredAdapter.self, "tt-factored.adapt.yaml")
        try check(TTInterleavedAdapter.self, "tt-interleaved.adapt.yaml")
    }

    /// Runs both executors on the same parameters and inputs and asserts every
    /// output, gradient included, is the same bits.
    private func check<A: GeneratedAdapter>(_ type: A.Type, _ spec: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let checked = try SpecLoader.load(path: specPath(spec))
        let plan = try XCTUnwrap(Planner.plan(checked).0)
        let adapter = A(threads: 2), interpreter = PlanInterpreter(plan: plan, threads: 2)
        var random = TestRandom(seed: 5)
        for i in 0..<plan.parameterCount {
            let v = random.uniform(0.5)
            adapter.parameters[i] = v
            interpreter.storage.parameters[i] = v
        }
        adapter.prepare()
        interpreter.prepare()
        let names = checked.spec.model.modules.map(\.name)
        func module(_ name: String) -> A.Module { A.Module(rawValue: names.firstIndex(of: name)!)! }
        var compared = 0
        func same(_ generated: [Float], _ interpreted: [Float], _ what: String) {
            compared += 1
            XCTAssertEqual(generated.count, interpreted.count, what, file: file, line: line)
            guard let k = generated.indices.first(where: { $0 < interpreted.count && generated[$0].bitPattern != interpreted[$0].bitPattern }) else { return }
            XCTFail("\(A.specName) \(what): element \(k) is \(generated[k]) generated, \(interpreted[k]) interpreted", file: file, line: line)
        }
        let used = Set(plan.pairs.map(\.layer)), layers = [used.min()!, used.max()!]
        let pairs = plan.pairs.filter { $0.dora == nil && layers.contains($0.layer) }
        for n in [1, 40] {
            for pair in pairs {
                let m = module(pair.module)
                let x = (0..<n * pair.inFeatures).map { _ in random.uniform(1) }
                let y0 = (0..<n * pair.outFeatures).map { _ in random.uniform(1) }
                let dy = (0..<n * pair.outFeatures).map { _ in random.uniform(1) }
                var y = y0
                try x.withUnsafeBufferPointer { x in
                    try y.withUnsafeMutableBufferPointer { try interpreter.forward(layer: pair.layer, module: pair.module, x: x, rows: n, y: $0) }
                }
                same(try adapter.forward(layer: pair.layer, module: m, x: x, rows: n, y: y0), y, "forward \(pair.key) n=\(n)")
                var dx = [Float](repeating: 0, count: n * pair.inFeatures)
                try x.withUnsafeBufferPointer { x in
                    try dy.withUnsafeBufferPointer { dy in
                        try dx.withUnsafeMutableBufferPointer {
                            try interpreter.backward(layer: pair.layer, module: pair.module, x: x, dy: dy, rows: n, dx: $0)
                        }
                    }
                }
                same(try adapter.backward(layer: pair.layer, module: m, x: x, dy: dy, rows: n), dx, "backward \(pair.key) n=\(n)")
                // ΔW of LLaMA-sized maps (bench-decode's 11008 × 4096) takes seconds to compare in a debug build.
                if n == 1 && pair.layer == layers[0] && pair.outFeatures * pair.inFeatures <= 1 << 22 {
                    var delta = [Float](repeating: 0, count: pair.outFeatures * pair.inFeatures)
                    try delta.withUnsafeMutableBufferPointer { try interpreter.materialize(layer: pair.layer, module: pair.module, into: $0) }
                    same(try adapter.materialize(layer: pair.layer, module: m), delta, "materialize \(pair.key)")
                }
            }
            for fused in plan.groups.flatMap(\.layerForwards) where layers.contains(fused.layer) {
                try checkFused(adapter, interpreter, fused, n: n, module: module, random: &random, same: same)
            }
        }
        adapter.finishBackward()
        interpreter.finishBackward()
        same(Array(adapter.gradients), Array(interpreter.storage.gradients), "gradients after finishBackward")
        XCTAssertGreaterThan(compared, pairs.count, file: file, line: line)
    }

    /// The fused forward and backward of one layer's modules, both executors.
    private func checkFused<A: GeneratedAdapter>(_ adapter: A, _ interpreter: PlanInterpreter, _ fused: LayerForward, n: Int,
                                                 module: (String) -> A.Module, random: inout TestRandom,
                                                 same: ([Float], [Float], String) -> Void) throws {
        let shapes = fused.modules.map { A.shape(of: module($0)) }
        let width = shapes[0].in
        let x = (0..<n * width).map { _ in random.uniform(1) }
        let y0 = shapes.map { s in (0..<n * s.out).map { _ in random.uniform(1) } }
        let dys = shapes.map { s in (0..<n * s.out).map { _ in random.uniform(1) } }
        func run(_ forward: ([UnsafeMutableBufferPointer<Float>], UnsafeBufferPointer<Float>) throws -> Void) rethrows -> [[Float]] {
            var ys = y0
            let pointers = ys.indices.map { i in UnsafeMutableBufferPointer<Float>.allocate(capacity: ys[i].count) }
            defer { pointers.forEach { $0.deallocate() } }
            for (p, y) in zip(pointers, ys) { _ = p.initialize(from: y) }
            try x.withUnsafeBufferPointer { try forward(pointers, $0) }
            for i in ys.indices { ys[i] = Array(pointers[i]) }
            return ys
        }
        let generated = try run { ys, x in try adapter.forward(layer: fused.layer, modules: fused.modules.map(module), x: x, rows: n, outputs: ys) }
        let interpreted = try run { ys, x in try interpreter.forwardLayer(layer: fused.layer, modules: fused.modules, x: x, rows: n, outputs: ys) }
        for i in fused.modules.indices { same(generated[i], interpreted[i], "fused forward \(fused.layer).\(fused.modules[i]) n=\(n)") }
        func backward(_ call: (UnsafeBufferPointer<Float>, [UnsafeBufferPointer<Float>], UnsafeMutableBufferPointer<Float>) throws -> Void) rethrows -> [Float] {
            let pointers = dys.map { dy in UnsafeMutableBufferPointer<Float>.allocate(capacity: dy.count) }
            defer { pointers.forEach { $0.deallocate() } }
            for (p, dy) in zip(pointers, dys) { _ = p.initialize(from: dy) }
            var dx = [Float](repeating: 0, count: n * width)
            try x.withUnsafeBufferPointer { x in try dx.withUnsafeMutableBufferPointer { try call(x, pointers.map { UnsafeBufferPointer($0) }, $0) } }
            return dx
        }
        let dxGenerated = try backward { x, dys, dx in
            try adapter.backward(layer: fused.layer, modules: fused.modules.map(module), x: x, dys: dys, rows: n, dx: dx)
        }
        let dxInterpreted = try backward { x, dys, dx in
            try interpreter.backwardLayer(layer: fused.layer, modules: fused.modules, x: x, dys: dys, rows: n, dx: dx)
        }
        same(dxGenerated, dxInterpreted, "fused backward \(fused.layer) n=\(n)")
    }
}
