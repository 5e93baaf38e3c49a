import XCTest
import AdaptRuntime
@testable import AdaptcCore
import GeneratedAdapters
import AdaptTestSupport

/// The repository root, found from this file's path.
let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

func specPath(_ file: String) -> String { repositoryRoot.appendingPathComponent("Specs/\(file)").path }

/// Checks a generated adapter type three ways on random weights and inputs:
/// against the plan interpreter (same plan, other executor), against a float64
/// loop over DESIGN §2's definition (s·B·A, with s from the spec, not the plan),
/// and its backward against central finite differences of its own forward.
struct GeneratedAdapterHarness<Adapter: GeneratedAdapter> {
    let checked: CheckedSpec
    let plan: Plan
    let adapter: Adapter
    let interpreter: PlanInterpreter
    var random = TestRandom(seed: 11)

    init(spec file: String, threads: Int = 2) throws {
        checked = try SpecLoader.load(path: specPath(file))
        let (plan, diagnostics) = Planner.plan(checked)
        XCTAssertEqual(diagnostics.filter { $0.severity == .error }, [])
        self.plan = try XCTUnwrap(plan)
        adapter = Adapter(threads: threads)
        interpreter = PlanInterpreter(plan: self.plan, threads: threads)
    }

    func module(_ name: String) -> Adapter.Module {
        Adapter.Module(rawValue: checked.spec.model.modules.firstIndex { $0.name == name }!)!
    }

    mutating func randomizeParameters() {
        for i in 0..<plan.parameterCount {
            let v = random.uniform(0.5)
            adapter.parameters[i] = v
            interpreter.storage.parameters[i] = v
        }
    }

    /// A and B of a pair as float64 matrices, read by key from the layout.
    func factors(_ pair: PairPlan) -> (a: [Double], b: [Double], r: Int, s: Double) {
        let group = checked.group(covering: Pair(layer: pair.layer, module: pair.module))!
        let label = group.group.shared ? "shared" : String(pair.layer)
        let a = plan.parameter("\(group.name).\(label).\(pair.module).A")!
        let b = plan.parameter("\(group.name).\(label).\(pair.module).B")!
        let p = adapter.parameters
        // Scale from the spec's definition (DESIGN §2), independent of the planner.
        let rank = group.rank(layer: pair.layer, module: pair.module)
        let s = group.alpha(layer: pair.layer, module: pair.module).map { alpha in
            group.group.scaling == .standard ? alpha / Double(rank) : alpha / Double(rank).squareRoot()
        } ?? 1
        XCTAssertEqual(a.shape[0], rank)
        return ((0..<a.count).map { Double(p[a.offset + $0]) }, (0..<b.count).map { Double(p[b.offset + $0]) }, rank, s)
    }

    /// out[rows, cols] = Σ_k l[rows, k] r[k, cols] with flexible layouts, float64.
    static func product(_ rows: Int, _ cols: Int, _ inner: Int, _ l: (Int, Int) -> Double, _ r: (Int, Int) -> Double) -> [Double] {
        var out = [Double](repeating: 0, count: rows * cols)
        for i in 0..<rows { for k in 0..<inner { let lik = l(i, k); if lik == 0 { continue }; for j in 0..<cols { out[i * cols + j] += lik * r(k, j) } } }
        return out
    }

    mutating func checkForward(_ pair: PairPlan, n: Int) throws {
        let (a, b, r, s) = factors(pair)
        let (inF, outF) = (pair.inFeatures, pair.outFeatures)
        let x = random.floats(n * inF), y0 = random.floats(n * outF)
        // Reference: y0 + s·(x·Aᵀ)·Bᵀ.
        let z = Self.product(n, r, inF, { Double(x[$0 * inF + $1]) }, { a[$1 * inF + $0] })
        let delta = Self.product(n, outF, r, { z[$0 * r + $1] }, { b[$1 * r + $0] })
        let expected = (0..<n * outF).map { Double(y0[$0]) + s * delta[$0] }
        let generated = try adapter.forward(layer: pair.layer, module: module(pair.module), x: x, rows: n, y: y0)
        assertClose(generated, expected, "generated forward \(pair.key) n=\(n)")
        var interpreted = y0
        try x.withUnsafeBufferPointer { x in try interpreted.withUnsafeMutableBufferPointer {
            try interpreter.forward(layer: pair.layer, module: pair.module, x: x, rows: n, y: $0) } }
        assertClose(interpreted, generated.map(Double.init), "interpreter vs generated forward \(pair.key) n=\(n)")
    }

    mutating func checkBackward(_ pair: PairPlan, n: Int) throws {
        let (a, b, r, s) = factors(pair)
        let (inF, outF) = (pair.inFeatures, pair.outFeatures)
        let x = random.floats(n * inF), dy = random.floats(n * outF), dx0 = random.floats(n * inF)
        adapter.storage.zeroGradients()
        interpreter.storage.zeroGradients()
        let dx = try adapter.backward(layer: pair.layer, module: module(pair.module), x: x, dy: dy, rows: n, dx: dx0)
        // dz = s·dy·B [n, r]; dx = dx0 + dz·A; dA = dzᵀ·x; dB = s·dyᵀ·(x·Aᵀ).
        let dz = Self.product(n, r, outF, { s * Double(dy[$0 * outF + $1]) }, { b[$0 * r + $1] })
        let dxRef = Self.product(n, inF, r, { dz[$0 * r + $1] }, { a[$0 * inF + $1] })
        assertClose(dx, (0..<n * inF).map { Double(dx0[$0]) + dxRef[$0] }, "generated dx \(pair.key) n=\(n)")
        let z = Self.product(n, r, inF, { Double(x[$0 * inF + $1]) }, { a[$1 * inF + $0] })
        let dA = Self.product(r, inF, n, { dz[$1 * r + $0] }, { Double(x[$0 * inF + $1]) })
        let dB = Self.product(outF, r, n, { s * Double(dy[$1 * outF + $0]) }, { z[$0 * r + $1] })
        let (aKey, bKey) = keys(pair)
        assertClose(gradient(aKey, adapter.gradients), dA, "generated dA \(pair.key) n=\(n)")
        assertClose(gradient(bKey, adapter.gradients), dB, "generated dB \(pair.key) n=\(n)")
        var dxInterpreted = dx0
        try x.withUnsafeBufferPointer { x in try dy.withUnsafeBufferPointer { dy in try dxInterpreted.withUnsafeMutableBufferPointer {
            try interpreter.backward(layer: pair.layer, module: pair.module, x: x, dy: dy, rows: n, dx: $0) } } }
        assertClose(dxInterpreted, dx.map(Double.init), "interpreter vs generated dx \(pair.key)")
        assertClose(gradient(aKey, interpreter.storage.gradients), gradient(aKey, adapter.gradients).map(Double.init), "interpreter dA")
        adapter.finishBackward()
    }

    func keys(_ pair: PairPlan) -> (String, String) {
        let group = checked.group(covering: Pair(layer: pair.layer, module: pair.module))!
        let label = group.group.shared ? "shared" : String(pair.layer)
        return ("\(group.name).\(label).\(pair.module).A", "\(group.name).\(label).\(pair.module).B")
    }

    func gradient(_ key: String, _ buffer: UnsafeMutableBufferPointer<Float>) -> [Float] {
        let t = plan.parameter(key)!
        return Array(buffer[t.offset..<t.offset + t.count])
    }

    /// L(θ, x) = ⟨g, forward(x)⟩: its gradient is what backward returns for dy = g.
    /// Central differences on a few parameters and inputs (L is linear in each).
    mutating func checkFiniteDifferences(_ pair: PairPlan, n: Int) throws {
        let (inF, outF) = (pair.inFeatures, pair.outFeatures)
        let m = module(pair.module)
        var x = random.floats(n * inF)
        let g = random.floats(n * outF)
        func loss(_ x: [Float]) throws -> Double {
            let y = try adapter.forward(layer: pair.layer, module: m, x: x, rows: n)
            return zip(y, g).map { Double($0) * Double($1) }.reduce(0, +)
        }
        adapter.storage.zeroGradients()
        let dx = try adapter.backward(layer: pair.layer, module: m, x: x, dy: g, rows: n)
        // L is linear in each single entry, so central differences have no
        // truncation error; a large step keeps float32 rounding out of the quotient.
        let h: Float = 0.5
        for _ in 0..<4 {
            let i = Int(random.next() % UInt64(x.count))
            let saved = x[i]
            x[i] = saved + h; let up = try loss(x)
            x[i] = saved - h; let down = try loss(x)
            x[i] = saved
            let numeric = (up - down) / Double(2 * h)
            XCTAssertEqual(numeric, Double(dx[i]), accuracy: 2e-3 * max(1, abs(numeric)), "FD dx[\(i)] \(pair.key)")
        }
        let (aKey, bKey) = keys(pair)
        for key in [aKey, bKey] {
            let t = plan.parameter(key)!
            for _ in 0..<4 {
                let i = t.offset + Int(random.next() % UInt64(t.count))
                let saved = adapter.parameters[i]
                adapter.parameters[i] = saved + h; let up = try loss(x)
                adapter.parameters[i] = saved - h; let down = try loss(x)
                adapter.parameters[i] = saved
                let numeric = (up - down) / Double(2 * h)
                XCTAssertEqual(numeric, Double(adapter.gradients[i]), accuracy: 2e-3 * max(1, abs(numeric)), "FD \(key)[\(i - t.offset)]")
            }
        }
    }

    mutating func checkMaterialize(_ pair: PairPlan) throws {
        let (a, b, r, s) = factors(pair)
        let (inF, outF) = (pair.inFeatures, pair.outFeatures)
        let expected = Self.product(outF, inF, r, { s * b[$0 * r + $1] }, { a[$0 * inF + $1] })
        let generated = try adapter.materialize(layer: pair.layer, module: module(pair.module))
        assertClose(generated, expected, "generated materialize \(pair.key)")
        var interpreted = [Float](repeating: 0, count: outF * inF)
        try interpreted.withUnsafeMutableBufferPointer { try interpreter.materialize(layer: pair.layer, module: pair.module, into: $0) }
        assertClose(interpreted, expected, "interpreter materialize \(pair.key)")
    }

    /// The fused forward of modules sharing an input equals per-pair forwards.
    mutating func checkLayerForwards(n: Int) throws {
        for fused in plan.groups.flatMap(\.layerForwards) {
            let inF = plan.pair(layer: fused.layer, module: fused.modules[0])!.inFeatures
            let x = random.floats(n * inF)
            let starts = fused.modules.map { random.floats(n * plan.pair(layer: fused.layer, module: $0)!.outFeatures) }
            let outputs = starts.map { start -> UnsafeMutableBufferPointer<Float> in
                let buffer = UnsafeMutableBufferPointer<Float>.allocate(capacity: start.count)
                _ = buffer.initialize(from: start)
                return buffer
            }
            defer { outputs.forEach { $0.deallocate() } }
            try x.withUnsafeBufferPointer {
                try adapter.forward(layer: fused.layer, modules: fused.modules.map(module), x: $0, rows: n, outputs: outputs)
            }
            for (i, name) in fused.modules.enumerated() {
                let single = try adapter.forward(layer: fused.layer, module: module(name), x: x, rows: n, y: starts[i])
                assertClose(Array(outputs[i]), single.map(Double.init), "fused forward layer \(fused.layer) \(name) n=\(n)")
            }
        }
    }
}
