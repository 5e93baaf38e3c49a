import AdaptcCore
import AdaptRuntime
import AdaptTestSupport
import XCTest

/// The interpreter's DoRA pairs (PlanInterpreter+DoRA) against PEFT's own
/// use_dora=True forward and autograd (Tests/Fixtures/peft/dora_qv), and 1
/// against 2 threads bit for bit.
final class DoRAInterpreterTests: XCTestCase {
    private let spec = """
    adaptc: 1
    name: DoraQv
    model:
      layers: 2
      modules: {attention.self.query: [8, 8], attention.self.value: [8, 8]}
      weights: {key: "encoder.layer.{layer}.{module}.weight"}
    adapters:
      - name: lora
        structure: lora
        modules: [attention.self.query, attention.self.value]
        rank: 2
        alpha: 4
        dora: true
    """
    private let (n, d) = (3, 8)

    private func relative(_ a: [Float], _ b: [Float]) -> Double {
        var num = 0.0, den = 0.0
        for (u, v) in zip(a, b) { num = max(num, abs(Double(u) - Double(v))); den = max(den, abs(Double(v))) }
        return num / den
    }

    private func file(_ name: String) throws -> SafetensorsFile {
        try SafetensorsFile.read(path: PEFTFixtures.file(name, in: "dora_qv"))
    }

    /// An interpreter holding the fixture's A, B and m, prepared with its base weights.
    private func interpreter(threads: Int) throws -> (PlanInterpreter, [String: [Float]]) {
        let checked = try SpecLoader.check(source: spec, path: "dora.adapt.yaml")
        let plan = try XCTUnwrap(Planner.plan(checked).0)
        XCTAssertEqual(plan.parameters.filter { $0.key.hasSuffix(".magnitude") }.map(\.shape), Array(repeating: [8], count: 4))
        let interpreter = PlanInterpreter(plan: plan, threads: threads)
        let adapter = try file("adapter_model.safetensors"), base = try file("base.safetensors")
        var weights: [String: [Float]] = [:]
        for tensor in plan.parameters {
            let parts = tensor.key.split(separator: ".", maxSplits: 2).map(String.init)  // lora, LAYER, MODULE.KIND
            let module = parts[2].components(separatedBy: ".").dropLast().joined(separator: ".")
            let kind = parts[2].components(separatedBy: ".").last!
            let path = "base_model.model.encoder.layer.\(parts[1]).\(module)."
            let key = path + (kind == "magnitude" ? "lora_magnitude_vector" : "lora_\(kind).weight")
            interpreter.storage.parameters.baseAddress!.advanced(by: tensor.offset)
                .update(from: try adapter.floats(key), count: tensor.count)
            weights["\(parts[1]).\(module)"] = try base.floats("encoder.layer.\(parts[1]).\(module).weight")
        }
        var pointers: [String: UnsafeBufferPointer<Float>] = [:]
        let held = weights.mapValues { values -> UnsafeMutableBufferPointer<Float> in
            let p = UnsafeMutableBufferPointer<Float>.allocate(capacity: values.count)
            _ = p.initialize(from: values)
            return p
        }
        defer { held.values.forEach { $0.deallocate() } }
        for (key, p) in held { pointers[key] = UnsafeBufferPointer(p) }
        try interpreter.prepare(base: pointers)
        return (interpreter, weights)
    }

    /// x·Wᵀ in float64.
    private func baseOutput(_ x: [Float], _ w: [Float]) -> [Float] {
        (0..<(n * d)).map { k in Float((0..<d).reduce(0.0) { $0 + Double(x[(k / d) * d + $1]) * Double(w[(k % d) * d + $1]) }) }
    }

    func testForwardAndBackwardEqualPEFT() throws {
        let (interpreter, weights) = try interpreter(threads: 1)
        let inputs = try file("inputs.safetensors"), delta = try file("delta.safetensors")
        let dys = try file("dy.safetensors"), grads = try file("grads.safetensors")
        let plan = interpreter.plan
        for pair in plan.pairs {
            let p = "encoder.layer.\(pair.layer).\(pair.module)"
            let x = try inputs.floats(p), w = weights[pair.key]!, base = baseOutput(x, w)
            var y = base
            try x.withUnsafeBufferPointer { x in
                try y.withUnsafeMutableBufferPointer { try interpreter.forward(layer: pair.layer, module: pair.module, x: x, rows: n, y: $0) }
            }
            XCTAssertLessThan(relative(zip(y, base).map { $0 - $1 }, try delta.floats(p)), 1e-5, p)

            var dy = try dys.floats(p), dx = [Float](repeating: 0, count: n * d)
            try x.withUnsafeBufferPointer { x in
                try base.withUnsafeBufferPointer { base in
                    try dy.withUnsafeMutableBufferPointer { dy in
                        try dx.withUnsafeMutableBufferPointer {
                            try interpreter.backward(layer: pair.layer, module: pair.module, x: x, baseOutput: base, dy: dy, rows: n, dx: $0)
                        }
                    }
                }
            }
            // The caller's base backward takes the rewritten dy through W: dx += dy·W.
            for row in 0..<n { for i in 0..<d { for o in 0..<d { dx[row * d + i] += dy[row * d + o] * w[o * d + i] } } }
            XCTAssertLessThan(relative(dx, try grads.floats(p + ".dx")), 1e-5, p)
            for (kind, name) in [("A", "dA"), ("B", "dB"), ("magnitude", "dm")] {
                let tensor = try XCTUnwrap(plan.parameter("lora.\(pair.key).\(kind)"))
                let g = Array(interpreter.storage.gradients[tensor.offset..<(tensor.offset + tensor.count)])
                XCTAssertLessThan(relative(g, try grads.floats(p + "." + name)), 1e-5, "\(p) \(name)")
            }
        }
    }

    /// Forward and backward on 1 and 2 threads give the same bits (64 rows, seeded).
    func testThreadCountChangesNoBits() throws {
        let rng = TestRandom(seed: 29)
        let rows = 64
        var results: [[Float]] = []
        for threads in [1, 2] {
            let (interpreter, weights) = try interpreter(threads: threads)
            var rng = rng
            var collected: [Float] = []
            for pair in interpreter.plan.pairs {
                let x = rng.floats(rows * d), dy0 = rng.floats(rows * d)
                let w = weights[pair.key]!
                var y = (0..<(rows * d)).map { k in Float((0..<d).reduce(0.0) { $0 + Double(x[(k / d) * d + $1]) * Double(w[(k % d) * d + $1]) }) }
                let base = y
                var dy = dy0, dx = [Float](repeating: 0, count: rows * d)
                try x.withUnsafeBufferPointer { x in
                    try y.withUnsafeMutableBufferPointer { try interpreter.forward(layer: pair.layer, module: pair.module, x: x, rows: rows, y: $0) }
                    try base.withUnsafeBufferPointer { base in
                        try dy.withUnsafeMutableBufferPointer { dy in
                            try dx.withUnsafeMutableBufferPointer {
                                try interpreter.backward(layer: pair.layer, module: pair.module, x: x, baseOutput: base, dy: dy, rows: rows, dx: $0)
                            }
                        }
                    }
                }
                collected += y + dy + dx
            }
            collected += Array(interpreter.storage.gradients)
            results.append(collected)
        }
        XCTAssertEqual(results[0].map(\.bitPattern), results[1].map(\.bitPattern))
    }

    /// After the parameters change (through `storage.parameters`) the interpreter
    /// recomputes the norms from the W it kept: its forward is DoRA's for the new
    /// A and B (this plan has no other prepared state to go stale).
    func testNormsFollowAParameterUpdate() throws {
        let (interpreter, weights) = try interpreter(threads: 1)
        XCTAssertEqual(interpreter.plan.preparedCount, 0)
        let pair = interpreter.plan.pairs[0]
        let a = try XCTUnwrap(pair.dora?.a), b = try XCTUnwrap(pair.dora?.b), m = try XCTUnwrap(pair.dora?.magnitude)
        let p = interpreter.storage.parameters
        for k in 0..<b.count { p[b.offset + k] *= 3 }
        var rng = TestRandom(seed: 3)
        let x = rng.floats(n * d), w = weights[pair.key]!
        var y = baseOutput(x, w)
        try x.withUnsafeBufferPointer { x in
            try y.withUnsafeMutableBufferPointer { try interpreter.forward(layer: pair.layer, module: pair.module, x: x, rows: n, y: $0) }
        }
        let values = Array(p)
        let reference = DoRAReference(w: w, a: Array(values[a.offset..<(a.offset + a.count)]), b: Array(values[b.offset..<(b.offset + b.count)]),
                                      m: Array(values[m.offset..<(m.offset + m.count)]), scale: pair.scale, out: d, in: d, rank: pair.rank)
        assertClose(y, reference.output(x, rows: n), "x·W'ᵀ after B changed")
    }

    /// Without prepare(base:) a DoRA pair's forward and plain backward refuse with one line.
    func testWithoutTheBaseForwardRefuses() throws {
        let checked = try SpecLoader.check(source: spec, path: "dora.adapt.yaml")
        let interpreter = PlanInterpreter(plan: try XCTUnwrap(Planner.plan(checked).0), threads: 1)
        let x = [Float](repeating: 1, count: d)
        var y = [Float](repeating: 0, count: d)
        XCTAssertThrowsError(try x.withUnsafeBufferPointer { x in
            try y.withUnsafeMutableBufferPointer { try interpreter.forward(layer: 0, module: "attention.self.query", x: x, rows: 1, y: $0) }
        }) { XCTAssertTrue("\($0)".contains("needs its base weight W: call prepare(base:)"), "\($0)") }
        XCTAssertThrowsError(try x.withUnsafeBufferPointer { x in
            try y.withUnsafeBufferPointer { dy in
                var dx = [Float](repeating: 0, count: d)
                try dx.withUnsafeMutableBufferPointer { try interpreter.backward(layer: 0, module: "attention.self.query", x: x, dy: dy, rows: 1, dx: $0) }
            }
        }) { XCTAssertTrue("\($0)".contains("is a DoRA pair: backward needs the base output"), "\($0)") }
    }
}
