import XCTest
import AdaptRuntime
@testable import AdaptcCore
import GeneratedAdapters
import AdaptTestSupport

/// Generated code for the tensor-structure example specs against the plan
/// interpreter (which TensorPlannerTests checks against the float64
/// definition): materialize, forward per pair and fused, backward with dx and
/// every parameter gradient after finishBackward, and re-preparation after a
/// parameter update.
final class TensorGeneratedTests: XCTestCase {
    func testMetaTT() throws { try run(MetaTTBertAdapter.self, "metatt-bert.adapt.yaml", layers: [0, 11]) }
    func testFactoredTensorTrain() throws { try run(TTFactoredAdapter.self, "tt-factored.adapt.yaml", layers: [0, 5]) }
    func testLoTRTucker() throws { try run(LoTRTuckerAdapter.self, "lotr-tucker.adapt.yaml", layers: [3]) }
    func testLoRTACP() throws { try run(LoRTACpAdapter.self, "lorta-cp.adapt.yaml", layers: [7]) }
    func testInterleavedTensorTrain() throws { try run(TTInterleavedAdapter.self, "tt-interleaved.adapt.yaml", layers: [0, 1, 2, 3]) }

    /// Forward on 70 rows runs on row blocks (32, 32, 6 rows at these widths);
    /// it must equal forward called on each row alone (one block, GEMV), for one
    /// pair and for the fused layer, at 1 and 2 threads: a block given the wrong
    /// rows, output offset or workspace shows here.
    func testRowBlocksEqualRowByRowForward() throws {
        try rowByRow(BenchTTXLayerAdapter.self)
        try rowByRow(BenchCpXLayerAdapter.self)
        try rowByRow(BenchLoTRXLayerAdapter.self)
        try rowByRow(BenchLoraXLayerAdapter.self)
    }

    private func rowByRow<Adapter: GeneratedAdapter>(_ type: Adapter.Type) throws {
        for threads in [1, 2] {
            let adapter = Adapter(threads: threads)
            var random = TestRandom(seed: 8)
            let values = random.floats(Adapter.parameterCount, bound: 0.3)
            for i in values.indices { adapter.parameters[i] = values[i] }
            let modules = Array(Adapter.Module.allCases), n = 70, width = Adapter.shape(of: modules[0]).in
            let x = random.floats(n * width), start = modules.map { random.floats(n * Adapter.shape(of: $0).out) }
            let fused = try adapter.forward(layer: 1, modules: modules, x: x, rows: n, outputs: start)
            for (mi, module) in modules.enumerated() {
                let out = Adapter.shape(of: module).out
                let alone = try adapter.forward(layer: 1, module: module, x: x, rows: n, y: start[mi])
                var rows: [Float] = []
                for r in 0..<n {
                    rows += try adapter.forward(layer: 1, module: module, x: Array(x[r * width..<(r + 1) * width]), rows: 1,
                                                y: Array(start[mi][r * out..<(r + 1) * out]))
                }
                let expected = rows.map(Double.init)
                assertClose(alone, expected, "\(Adapter.specName) forward on row blocks, module \(mi), \(threads) threads")
                assertClose(fused[mi], expected, "\(Adapter.specName) fused forward on row blocks, module \(mi), \(threads) threads")
            }
        }
    }

    func run<Adapter: GeneratedAdapter>(_ type: Adapter.Type, _ file: String, layers: [Int]) throws {
        let checked = try SpecLoader.load(path: specPath(file))
        let plan = try XCTUnwrap(Planner.plan(checked).0)
        for threads in [1, 2] {
            let adapter = Adapter(threads: threads)
            let interpreter = PlanInterpreter(plan: plan, threads: threads)
            var random = TestRandom(seed: 21)
            let values = random.floats(plan.parameterCount, bound: 0.5)
            let parameters = adapter.parameters, reference = interpreter.storage.parameters
            for i in values.indices { parameters[i] = values[i]; reference[i] = values[i] }
            let modules = Array(Adapter.Module.allCases)
            for (index, layer) in layers.enumerated() {
                // 70 rows: forward runs on row blocks (32, 32, 6); 5 rows: in one block.
                let n = index == 0 ? 70 : 5
                let width = Adapter.shape(of: modules[0]).in
                let x = random.floats(n * width)
                for module in modules {
                    let name = Adapter.moduleName(module)
                    guard plan.pair(layer: layer, module: name) != nil else { continue }
                    let shape = Adapter.shape(of: module)
                    let got = try adapter.materialize(layer: layer, module: module)
                    var expected = [Float](repeating: 0, count: got.count)
                    try expected.withUnsafeMutableBufferPointer { try interpreter.materialize(layer: layer, module: name, into: $0) }
                    assertClose(got, expected.map(Double.init), "\(file) materialize \(layer).\(name)")
                    let y = try adapter.forward(layer: layer, module: module, x: x, rows: n)
                    var yExpected = [Float](repeating: 0, count: n * shape.out)
                    try x.withUnsafeBufferPointer { xb in
                        try yExpected.withUnsafeMutableBufferPointer { try interpreter.forward(layer: layer, module: name, x: xb, rows: n, y: $0) }
                    }
                    assertClose(y, yExpected.map(Double.init), "\(file) forward \(layer).\(name)")
                    let dy = random.floats(n * shape.out)
                    let dx = try adapter.backward(layer: layer, module: module, x: x, dy: dy, rows: n)
                    var dxExpected = [Float](repeating: 0, count: n * shape.in)
                    try x.withUnsafeBufferPointer { xb in
                        try dy.withUnsafeBufferPointer { dyb in
                            try dxExpected.withUnsafeMutableBufferPointer {
                                try interpreter.backward(layer: layer, module: name, x: xb, dy: dyb, rows: n, dx: $0)
                            }
                        }
                    }
                    assertClose(dx, dxExpected.map(Double.init), "\(file) dx \(layer).\(name)")
                }
                // Fused forward of every module of the layer that reads this x.
                for fused in plan.groups.flatMap(\.layerForwards) where fused.layer == layer {
                    let cases = fused.modules.map { m in modules.first { Adapter.moduleName($0) == m }! }
                    var outputs = cases.map { [Float](repeating: 0, count: n * Adapter.shape(of: $0).out) }
                    let buffers = outputs.map { UnsafeMutableBufferPointer<Float>.allocate(capacity: $0.count) }
                    defer { buffers.forEach { $0.deallocate() } }
                    for b in buffers.indices { buffers[b].initialize(repeating: 0) }
                    try x.withUnsafeBufferPointer { try adapter.forward(layer: layer, modules: cases, x: $0, rows: n, outputs: buffers) }
                    for b in buffers.indices { outputs[b] = Array(buffers[b]) }
                    for (module, y) in zip(cases, outputs) {
                        let alone = try adapter.forward(layer: layer, module: module, x: x, rows: n)
                        assertClose(y, alone.map(Double.init), "\(file) fused forward \(layer)")
                    }
                    // Fused backward, generated vs interpreter (gradients compared at the end).
                    let dys = cases.map { random.floats(n * Adapter.shape(of: $0).out) }
                    var dx = [Float](repeating: 0, count: n * width), dxExpected = dx
                    let dyBuffers = dys.map { dy -> UnsafeMutableBufferPointer<Float> in
                        let b = UnsafeMutableBufferPointer<Float>.allocate(capacity: dy.count)
                        _ = b.initialize(from: dy)
                        return b
                    }
                    defer { dyBuffers.forEach { $0.deallocate() } }
                    try x.withUnsafeBufferPointer { xb in
                        try dx.withUnsafeMutableBufferPointer {
                            try adapter.backward(layer: layer, modules: cases, x: xb, dys: dyBuffers.map { UnsafeBufferPointer($0) }, rows: n, dx: $0)
                        }
                        try dxExpected.withUnsafeMutableBufferPointer {
                            try interpreter.backwardLayer(layer: layer, modules: fused.modules, x: xb,
                                                          dys: dyBuffers.map { UnsafeBufferPointer($0) }, rows: n, dx: $0)
                        }
                    }
                    assertClose(dx, dxExpected.map(Double.init), "\(file) fused backward dx \(layer)")
                }
            }
            adapter.finishBackward()
            interpreter.finishBackward()
            assertClose(Array(adapter.gradients), Array(interpreter.storage.gradients).map(Double.init), "\(file) gradients")
            XCTAssertTrue(adapter.gradients.contains { $0 != 0 }, "\(file): backward reached no parameter")
            // An update through `parameters` is seen by the next forward and backward
            // without an explicit prepare(): both read the prepared state, so they
            // must equal the interpreter prepared afresh on the new parameters.
            // (materialize alone cannot see it: it may not read the prepared state.)
            let layer = layers[0], module = modules[0], name = Adapter.moduleName(module)
            let shape = Adapter.shape(of: module)
            let n = 3
            let x = random.floats(n * shape.in), dy = random.floats(n * shape.out)
            let before = try adapter.forward(layer: layer, module: module, x: x, rows: n)
            let p = adapter.parameters
            let update = random.floats(p.count, bound: 0.5)
            for i in 0..<p.count { p[i] += update[i] }
            _ = interpreter.storage.parameters.update(fromContentsOf: p)
            interpreter.prepare()
            let after = try adapter.forward(layer: layer, module: module, x: x, rows: n)
            let dx = try adapter.backward(layer: layer, module: module, x: x, dy: dy, rows: n)
            var yExpected = [Float](repeating: 0, count: n * shape.out), dxExpected = [Float](repeating: 0, count: n * shape.in)
            try x.withUnsafeBufferPointer { xb in
                try yExpected.withUnsafeMutableBufferPointer { try interpreter.forward(layer: layer, module: name, x: xb, rows: n, y: $0) }
                try dy.withUnsafeBufferPointer { dyb in
                    try dxExpected.withUnsafeMutableBufferPointer {
                        try interpreter.backward(layer: layer, module: name, x: xb, dy: dyb, rows: n, dx: $0)
                    }
                }
            }
            XCTAssertNotEqual(before, after, "\(file): the update changed nothing")
            assertClose(after, yExpected.map(Double.init), "\(file): forward after an update (stale prepared state?)")
            assertClose(dx, dxExpected.map(Double.init), "\(file): backward after an update (stale prepared state?)")
        }
    }
}
