import XCTest
import AdaptRuntime
@testable import AdaptcCore
import GeneratedAdapters
import AdaptTestSupport

/// The generated code of a spec with DoRA groups (Specs/dora-qv.adapt.yaml,
/// DESIGN §5, §6) against PEFT's own use_dora=True (Tests/Fixtures/peft/dora_qv,
/// whose q/v pairs it has), the interpreter and the float64 definition
/// (`DoRAReference`); its backward against central differences; what it
/// refuses; 1 against 2 threads bit for bit on its wide pair.
final class DoRAGeneratedTests: XCTestCase {
    private typealias Adapter = DoraQvAdapter
    private let fixturePairs = [(0, Adapter.Module.attentionSelfQuery), (0, .attentionSelfValue), (1, .attentionSelfQuery), (1, .attentionSelfValue)]
    private let (n, d) = (3, 8)

    private func fixture(_ name: String) throws -> SafetensorsFile {
        try SafetensorsFile.read(path: PEFTFixtures.file(name, in: "dora_qv"))
    }

    private func key(_ layer: Int, _ module: Adapter.Module) -> String { "\(layer).\(Adapter.moduleName(module))" }

    /// Parameters: PEFT's A, B and m for the q/v pairs, seeded values for the wide pair
    /// (its m near ‖W‖_row, as init sets it). Base weights: PEFT's, and seeded for the wide pair.
    private func weights() throws -> (parameters: [Float], base: [String: [Float]]) {
        let adapter = try fixture("adapter_model.safetensors"), base = try fixture("base.safetensors")
        var rng = TestRandom(seed: 2929)
        var parameters = [Float](repeating: 0, count: Adapter.parameterCount)
        var weights: [String: [Float]] = [:]
        let (out, inDim) = Adapter.shape(of: .intermediateDense)
        weights["0.intermediate.dense"] = rng.floats(out * inDim, bound: 0.1)
        for tensor in Adapter.parameterLayout {
            let parts = tensor.key.split(separator: ".").map(String.init)   // GROUP, LAYER, MODULE…, KIND
            let module = parts[2..<(parts.count - 1)].joined(separator: "."), kind = parts.last!
            let values: [Float]
            if parts[0] == "lora" {
                let path = "base_model.model.encoder.layer.\(parts[1]).\(module)."
                values = try adapter.floats(path + (kind == "magnitude" ? "lora_magnitude_vector" : "lora_\(kind).weight"))
                weights["\(parts[1]).\(module)"] = try base.floats("encoder.layer.\(parts[1]).\(module).weight")
            } else if kind == "magnitude" {
                values = rng.floats(tensor.count, bound: 0.1).map { $0 + 1.3 }
            } else {
                values = rng.floats(tensor.count, bound: 0.2)
            }
            parameters.replaceSubrange(tensor.offset..<(tensor.offset + tensor.count), with: values)
        }
        return (parameters, weights)
    }

    /// Calls `body` with the base weights as the pointers `prepare(base:)` takes.
    private func withBase<R>(_ base: [String: [Float]], _ body: ([String: UnsafePointer<Float>]) throws -> R) rethrows -> R {
        let held = base.mapValues { values -> UnsafeMutableBufferPointer<Float> in
            let p = UnsafeMutableBufferPointer<Float>.allocate(capacity: values.count)
            _ = p.initialize(from: values)
            return p
        }
        defer { held.values.forEach { $0.deallocate() } }
        return try body(held.mapValues { UnsafePointer($0.baseAddress!) })
    }

    /// A generated adapter and an interpreter of the same plan, both holding `weights()` and prepared with the base.
    private func prepared(threads: Int) throws -> (Adapter, PlanInterpreter, [String: [Float]]) {
        let (parameters, base) = try weights()
        let adapter = Adapter(threads: threads)
        try adapter.setParameterValues(parameters)
        let checked = try SpecLoader.load(path: specPath("dora-qv.adapt.yaml"))
        let interpreter = PlanInterpreter(plan: try XCTUnwrap(Planner.plan(checked).0), threads: threads)
        XCTAssertEqual(interpreter.plan.parameters, Adapter.parameterLayout)
        interpreter.storage.parameters.baseAddress!.update(from: parameters, count: parameters.count)
        try withBase(base) { pointers in
            try adapter.prepare(base: pointers)
            try interpreter.prepare(base: Dictionary(uniqueKeysWithValues: pointers.map { ($0.key, UnsafeBufferPointer(start: $0.value, count: base[$0.key]!.count)) }))
        }
        return (adapter, interpreter, base)
    }

    /// One pair through the generated code: DoRA's output for y = x·Wᵀ on entry,
    /// the full dx (the adapter's part plus the rewritten dy taken through W),
    /// and the gradients of A, B and m (zeroed first).
    private func run(_ adapter: Adapter, _ layer: Int, _ module: Adapter.Module, x: [Float], dy dy0: [Float], w: [Float],
                     rows: Int) throws -> (y: [Float], dx: [Float], gradients: [Float]) {
        let (out, inDim) = Adapter.shape(of: module)
        let base = DoRABaseProduct.of(x, w, rows: rows, out: out, in: inDim)
        var y = base, dy = dy0, dx = [Float](repeating: 0, count: rows * inDim)
        adapter.zeroGradients()
        try x.withUnsafeBufferPointer { x in
            try y.withUnsafeMutableBufferPointer { try adapter.forward(layer: layer, module: module, x: x, rows: rows, y: $0) }
            try base.withUnsafeBufferPointer { base in
                try dy.withUnsafeMutableBufferPointer { dy in
                    try dx.withUnsafeMutableBufferPointer {
                        try adapter.backward(layer: layer, module: module, x: x, baseOutput: base, dy: dy, rows: rows, dx: $0)
                    }
                }
            }
        }
        for row in 0..<rows { for o in 0..<out { for i in 0..<inDim { dx[row * inDim + i] += dy[row * out + o] * w[o * inDim + i] } } }
        return (y, dx, adapter.gradientValues)
    }

    private func gradient(_ all: [Float], _ key: String) throws -> [Float] {
        let tensor = try XCTUnwrap(Adapter.parameterLayout.first { $0.key == key }, key)
        return Array(all[tensor.offset..<(tensor.offset + tensor.count)])
    }

    private func materialize(_ adapter: Adapter, _ layer: Int, _ module: Adapter.Module, w: [Float]) throws -> [Float] {
        var delta = [Float](repeating: 0, count: w.count)
        try w.withUnsafeBufferPointer { w in
            try delta.withUnsafeMutableBufferPointer { try adapter.materialize(layer: layer, module: module, base: w, into: $0) }
        }
        return delta
    }

    func testForwardBackwardMaterializeEqualPEFT() throws {
        let (adapter, _, base) = try prepared(threads: 1)
        let inputs = try fixture("inputs.safetensors"), dys = try fixture("dy.safetensors"), delta = try fixture("delta.safetensors")
        let grads = try fixture("grads.safetensors"), merged = try fixture("merged.safetensors")
        for (layer, module) in fixturePairs {
            let p = "encoder.layer.\(layer).\(Adapter.moduleName(module))", w = base[key(layer, module)]!
            let x = try inputs.floats(p)
            let result = try run(adapter, layer, module, x: x, dy: try dys.floats(p), w: w, rows: n)
            let own = zip(result.y, DoRABaseProduct.of(x, w, rows: n, out: d, in: d)).map { $0 - $1 }   // x·(W' − W)ᵀ
            XCTAssertLessThan(maxRelativeError(own, try delta.floats(p)), 1e-5, p)
            XCTAssertLessThan(maxRelativeError(result.dx, try grads.floats(p + ".dx")), 1e-5, p)
            for (kind, name) in [("A", "dA"), ("B", "dB"), ("magnitude", "dm")] {
                let g = try gradient(result.gradients, "lora.\(key(layer, module)).\(kind)")
                XCTAssertLessThan(maxRelativeError(g, try grads.floats(p + "." + name)), 1e-5, "\(p) \(name)")
            }
            let change = try materialize(adapter, layer, module, w: w)
            XCTAssertLessThan(maxRelativeError(zip(change, w).map { $0 + $1 }, try merged.floats(p + ".weight")), 1e-5, p)
            // merge (the protocol's, through materialize(…base:…)): W ← W', also stored [in, out]; unmerge refuses.
            var inPlace = w, transposed = (0..<(d * d)).map { w[($0 % d) * d + $0 / d] }
            try inPlace.withUnsafeMutableBufferPointer { try adapter.merge(layer: layer, module: module, into: $0) }
            try transposed.withUnsafeMutableBufferPointer { try adapter.merge(layer: layer, module: module, into: $0, transposed: true) }
            XCTAssertLessThan(maxRelativeError(inPlace, try merged.floats(p + ".weight")), 1e-5, p)
            XCTAssertEqual((0..<(d * d)).map { transposed[($0 % d) * d + $0 / d] }, inPlace, p)
            XCTAssertThrowsError(try inPlace.withUnsafeMutableBufferPointer { try adapter.merge(layer: layer, module: module, into: $0, unmerge: true) }) {
                XCTAssertTrue("\($0)".contains("is a DoRA pair: materialize needs the base weight W"), "\($0)")
            }
        }
    }

    /// Every pair, the wide one included, against the interpreter and the float64 definition.
    func testEqualsInterpreterAndDefinition() throws {
        let (adapter, interpreter, base) = try prepared(threads: 2)
        var rng = TestRandom(seed: 7)
        let rows = 5
        for (layer, module) in fixturePairs + [(0, .intermediateDense)] {
            let (out, inDim) = Adapter.shape(of: module), w = base[key(layer, module)]!
            let x = rng.floats(rows * inDim), dy = rng.floats(rows * out)
            let generated = try run(adapter, layer, module, x: x, dy: dy, w: w, rows: rows)
            // The interpreter, same calls.
            let name = Adapter.moduleName(module), baseOut = DoRABaseProduct.of(x, w, rows: rows, out: out, in: inDim)
            var y = baseOut, dyI = dy, dx = [Float](repeating: 0, count: rows * inDim), change = [Float](repeating: 0, count: out * inDim)
            interpreter.storage.zeroGradients()
            try x.withUnsafeBufferPointer { x in
                try y.withUnsafeMutableBufferPointer { try interpreter.forward(layer: layer, module: name, x: x, rows: rows, y: $0) }
                try baseOut.withUnsafeBufferPointer { b in
                    try dyI.withUnsafeMutableBufferPointer { dyI in
                        try dx.withUnsafeMutableBufferPointer { try interpreter.backward(layer: layer, module: name, x: x, baseOutput: b, dy: dyI, rows: rows, dx: $0) }
                    }
                }
            }
            try w.withUnsafeBufferPointer { w in
                try change.withUnsafeMutableBufferPointer { try interpreter.materialize(layer: layer, module: name, base: w, into: $0) }
            }
            for row in 0..<rows { for o in 0..<out { for i in 0..<inDim { dx[row * inDim + i] += dyI[row * out + o] * w[o * inDim + i] } } }
            let what = key(layer, module)
            XCTAssertLessThan(maxRelativeError(generated.y, y), 1e-6, "\(what) y")
            XCTAssertLessThan(maxRelativeError(generated.dx, dx), 1e-6, "\(what) dx")
            XCTAssertLessThan(maxRelativeError(generated.gradients, Array(interpreter.storage.gradients)), 1e-6, "\(what) gradients")
            XCTAssertLessThan(maxRelativeError(try materialize(adapter, layer, module, w: w), change), 1e-6, "\(what) W' − W")
            // The definition.
            let group = layer == 0 && module == .intermediateDense ? "wide" : "lora"
            let values = adapter.parameterValues
            let r = DoRAReference(w: w, a: try gradient(values, "\(group).\(what).A"), b: try gradient(values, "\(group).\(what).B"),
                                  m: try gradient(values, "\(group).\(what).magnitude"), scale: 2, out: out, in: inDim,
                                  rank: group == "wide" ? 8 : 2)
            assertClose(generated.y, r.output(x, rows: rows), "\(what) y")
            let g = r.gradients(x: x, dy: dy, rows: rows)
            assertClose(generated.dx, g.dx, "\(what) dx")
            assertClose(try gradient(generated.gradients, "\(group).\(what).A"), g.dA, "\(what) dA")
            assertClose(try gradient(generated.gradients, "\(group).\(what).B"), g.dB, "\(what) dB")
            assertClose(try gradient(generated.gradients, "\(group).\(what).magnitude"), g.dm, "\(what) dm")
            assertClose(zip(try materialize(adapter, layer, module, w: w), w).map { $0 + $1 }, r.merged, "\(what) W'")
        }
    }

    /// The generated backward against central differences of the generated
    /// forward, the norm held as PEFT holds it: the parameters are perturbed
    /// through a pointer taken before `prepare(base:)` (which does not make the
    /// norms stale), and `prepare()` refreshes the LoRA prepared state.
    func testBackwardAgainstCentralDifferences() throws {
        let (parameters, base) = try weights()
        let adapter = Adapter(threads: 1)
        let p = adapter.parameters
        p.baseAddress!.update(from: parameters, count: parameters.count)
        try withBase(base) { try adapter.prepare(base: $0) }
        var rng = TestRandom(seed: 31)
        let (layer, module) = (1, Adapter.Module.attentionSelfValue)
        let w = base[key(layer, module)]!
        var x = rng.floats(n * d)
        let dy = rng.floats(n * d)
        let result = try run(adapter, layer, module, x: x, dy: dy, w: w, rows: n)
        let loss = { (x: [Float]) -> Double in
            adapter.prepare()
            var y = DoRABaseProduct.of(x, w, rows: self.n, out: self.d, in: self.d)
            try x.withUnsafeBufferPointer { x in
                try y.withUnsafeMutableBufferPointer { try adapter.forward(layer: layer, module: module, x: x, rows: self.n, y: $0) }
            }
            return zip(y, dy).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        }
        let h: Float = 1e-2
        for kind in ["A", "B", "magnitude"] {
            let tensor = try XCTUnwrap(Adapter.parameterLayout.first { $0.key == "lora.\(key(layer, module)).\(kind)" })
            for i in tensor.offset..<(tensor.offset + tensor.count) {
                let saved = p[i]
                p[i] = saved + h; let up = try loss(x)
                p[i] = saved - h; let down = try loss(x)
                p[i] = saved
                let fd = (up - down) / Double(2 * h)
                XCTAssertEqual(Double(result.gradients[i]), fd, accuracy: 2e-3 * max(1, abs(fd)), "\(kind) \(i - tensor.offset)")
            }
        }
        for i in 0..<x.count {
            let saved = x[i]
            x[i] = saved + h; let up = try loss(x)
            x[i] = saved - h; let down = try loss(x)
            x[i] = saved
            let fd = (up - down) / Double(2 * h)
            XCTAssertEqual(Double(result.dx[i]), fd, accuracy: 2e-3 * max(1, abs(fd)), "dx \(i)")
        }
    }

    func testWithoutTheBaseOrAfterAnUpdateItThrows() throws {
        let (parameters, base) = try weights()
        let adapter = Adapter(threads: 1)
        try adapter.setParameterValues(parameters)
        let x = [Float](repeating: 0.5, count: d), w = base["0.attention.self.query"]!
        func message(_ body: () throws -> Void) -> String {
            do { try body() } catch { return "\(error)" }
            return "no error"
        }
        func forward() throws { _ = try adapter.forward(layer: 0, module: .attentionSelfQuery, x: x, rows: 1, y: [Float](repeating: 1, count: d)) }
        XCTAssertEqual(message(forward),
                       "DoraQv: 0.attention.self.query is a DoRA pair and needs its base weight W: call prepare(base:) with it")
        XCTAssertTrue(message { _ = try run(adapter, 0, .attentionSelfQuery, x: x, dy: x, w: w, rows: 1) }
            .hasSuffix("needs its base weight W: call prepare(base:) with it"))
        XCTAssertEqual(message { _ = try adapter.backward(layer: 0, module: .attentionSelfQuery, x: x, dy: x, rows: 1) },
                       "DoraQv: 0.attention.self.query is a DoRA pair: backward needs the base output; use backward(layer:module:x:baseOutput:dy:rows:dx:)")
        XCTAssertEqual(message { _ = try adapter.materialize(layer: 0, module: .attentionSelfQuery) },
                       "DoraQv: 0.attention.self.query is a DoRA pair: materialize needs the base weight W; use materialize(layer:module:base:into:)")
        // A layer forward refuses before it changes any output.
        try withBase(["0.attention.self.value": base["0.attention.self.value"]!]) { try adapter.prepare(base: $0) }
        var q = [Float](repeating: 1, count: d), v = [Float](repeating: 1, count: d)
        XCTAssertThrowsError(try x.withUnsafeBufferPointer { x in
            try q.withUnsafeMutableBufferPointer { q in
                try v.withUnsafeMutableBufferPointer { v in
                    try adapter.forward(layer: 0, modules: [.attentionSelfValue, .attentionSelfQuery], x: x, rows: 1, outputs: [v, q])
                }
            }
        })
        XCTAssertEqual(q + v, [Float](repeating: 1, count: 2 * d), "no output changed")
        try withBase(base) { try adapter.prepare(base: $0) }
        XCTAssertEqual(message(forward), "no error")
        _ = adapter.parameters   // an optimizer's step takes them
        XCTAssertEqual(message(forward),
                       "DoraQv: DoRA pair 0.attention.self.query: the parameters changed since prepare(base:) (its row norms depend on A and B): call prepare(base:) again")
        try withBase(base) { try adapter.prepare(base: $0) }
        XCTAssertEqual(message(forward), "no error")
        // Saving reads the parameters without making the norms stale.
        _ = adapter.parameterValues
        XCTAssertEqual(message(forward), "no error")
    }

    /// A base of the wrong shape, a missing tensor, a key naming no pair, a row
    /// of norm zero: one thrown line each, never a trap, and the norms prepared
    /// before stay as they were.
    func testBadBaseThrows() throws {
        let (weightsParameters, base) = try weights()
        var parameters = weightsParameters
        // B's row 2 of pair 1.value zero, so that a zero row 2 of W gives V a row of norm zero.
        let b = try XCTUnwrap(Adapter.parameterLayout.first { $0.key == "lora.1.attention.self.value.B" })
        for k in 4..<6 { parameters[b.offset + k] = 0 }
        let adapter = Adapter(threads: 1)
        try adapter.setParameterValues(parameters)
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("dora-generated-\(ProcessInfo.processInfo.processIdentifier)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        func file(_ name: String, _ edit: (inout [String: (values: [Float], shape: [Int])]) -> Void) throws -> SafetensorsFile {
            var tensors: [String: (values: [Float], shape: [Int])] = [:]
            for (key, values) in base {
                let (layer, module) = PairKey.parse(key)!
                let shape = module == "intermediate.dense" ? [1024, 512] : [8, 8]
                tensors[DoRAPreparedNorms.weightKey("encoder.layer.{layer}.{module}.weight", layer: layer, module: module)] = (values, shape)
            }
            edit(&tensors)
            var writer = SafetensorsWriter()
            for (key, t) in tensors { writer.add(key, floats: t.values, shape: t.shape) }
            let path = folder.appendingPathComponent(name).path
            try writer.write(to: path)
            return try SafetensorsFile.read(path: path)
        }
        let good = try file("good.safetensors") { _ in }
        try adapter.prepare(base: good)
        let x = [Float](repeating: 0.5, count: d)
        let before = try adapter.forward(layer: 1, module: .attentionSelfValue, x: x, rows: 1, y: [Float](repeating: 1, count: d))
        let q = "encoder.layer.1.attention.self.value.weight"
        let cases: [(SafetensorsFile, String)] = [
            (try file("shape.safetensors") { $0[q]!.shape = [4, 16] },
             "shape.safetensors: tensor \"\(q)\" has shape [4, 16], expected [8, 8]"),
            (try file("missing.safetensors") { $0[q] = nil }, "missing.safetensors: missing tensor \"\(q)\" (expected shape [8, 8])"),
            (try file("zero.safetensors") { for i in 16..<24 { $0[q]!.values[i] = 0 } },
             "DoraQv: DoRA pair 1.attention.self.value: row 2 of W + s·B·A has norm 0.0; DoRA divides by it"),
        ]
        for (bad, needle) in cases {
            XCTAssertThrowsError(try adapter.prepare(base: bad)) { XCTAssertTrue("\($0)".contains(needle), "\($0)") }
        }
        XCTAssertThrowsError(try withBase(["2.attention.self.query": base["0.attention.self.query"]!]) { try adapter.prepare(base: $0) }) {
            XCTAssertEqual("\($0)", "DoraQv: prepare(base:): no pair 2.attention.self.query (keys are LAYER.MODULE)")
        }
        XCTAssertEqual(try adapter.forward(layer: 1, module: .attentionSelfValue, x: x, rows: 1, y: [Float](repeating: 1, count: d)), before)
        // Other argument shapes throw too.
        XCTAssertThrowsError(try [Float](repeating: 0, count: 63).withUnsafeBufferPointer { w in
            var delta = [Float](repeating: 0, count: 64)
            try delta.withUnsafeMutableBufferPointer { try adapter.materialize(layer: 0, module: .attentionSelfQuery, base: w, into: $0) }
        }) { XCTAssertEqual("\($0)", "DoraQv: W has 63 elements, expected 64") }
        XCTAssertThrowsError(try run(adapter, 0, .attentionSelfQuery, x: [Float](repeating: 0, count: 9), dy: x, w: base["0.attention.self.query"]!, rows: 1))
    }

    /// 1 and 2 threads give the same bits on the wide pair, whose shapes cut
    /// DoRA's steps (and the LoRA products) into several blocks.
    func testThreadCountChangesNoBits() throws {
        let rows = 2048
        let (out, inDim) = Adapter.shape(of: .intermediateDense)
        XCTAssertGreaterThan(FixedBlocks(extent: out, unitWork: 2 * inDim * (8 + 1)).count, 1, "norms split")
        XCTAssertGreaterThan(FixedBlocks(extent: rows, unitWork: 2 * out).count, 1, "rescale splits")
        XCTAssertGreaterThan(FixedBlocks(extent: out, unitWork: 3 * rows).count, 1, "backward splits")
        XCTAssertGreaterThan(FixedBlocks(extent: out, unitWork: 4 * inDim).count, 1, "merge splits")
        var results: [[Float]] = []
        for threads in [1, 2] {
            let (parameters, base) = try weights()
            let adapter = Adapter(threads: threads)
            try adapter.setParameterValues(parameters)
            try withBase(base) { try adapter.prepare(base: $0) }
            var rng = TestRandom(seed: 5)
            let x = rng.floats(rows * inDim), baseOut = rng.floats(rows * out), dy0 = rng.floats(rows * out)
            var y = baseOut, dy = dy0, dx = [Float](repeating: 0, count: rows * inDim)
            try x.withUnsafeBufferPointer { x in
                try y.withUnsafeMutableBufferPointer { try adapter.forward(layer: 0, module: .intermediateDense, x: x, rows: rows, y: $0) }
                try baseOut.withUnsafeBufferPointer { b in
                    try dy.withUnsafeMutableBufferPointer { dy in
                        try dx.withUnsafeMutableBufferPointer {
                            try adapter.backward(layer: 0, module: .intermediateDense, x: x, baseOutput: b, dy: dy, rows: rows, dx: $0)
                        }
                    }
                }
            }
            results.append(y + dy + dx + adapter.gradientValues + (try materialize(adapter, 0, .intermediateDense, w: base["0.intermediate.dense"]!)))
        }
        XCTAssertEqual(results[0].count, results[1].count)
        XCTAssertTrue(results[0].map(\.bitPattern) == results[1].map(\.bitPattern), "1 and 2 threads differ")
    }
}

/// x·Wᵀ `[n, out]` in float64, the base output a caller hands to DoRA's forward.
enum DoRABaseProduct {
    static func of(_ x: [Float], _ w: [Float], rows n: Int, out: Int, in inDim: Int) -> [Float] {
        (0..<(n * out)).map { k in
            Float((0..<inDim).reduce(0.0) { $0 + Double(x[(k / out) * inDim + $1]) * Double(w[(k % out) * inDim + $1]) })
        }
    }
}
