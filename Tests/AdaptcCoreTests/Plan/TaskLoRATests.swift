import XCTest
@testable import AdaptcCore
import AdaptRuntime
import AdaptTestSupport

/// Lora groups with tasks (DESIGN §2 "Tasks"): one (A, B) per task, layer and
/// module; a call carries one task id per row and each row gets its own
/// task's ΔW. Checked against a float64 loop over the definition, written
/// here from the keys alone, and against per-task calls.
final class TaskLoRATests: XCTestCase {
    /// Model tasks [a, b, c]; group `g` has tasks [c, a] (b has no slice: its
    /// ΔW is zero) on query/key (one input) and value; group `p` has none.
    static let yaml = """
        adaptc: 1
        name: Multi
        model:
          layers: 2
          modules: {query: [6, 8], key: [5, 8], value: [4, 8], dense: [3, 4]}
          inputs: {attention: [query, key]}
          tasks: [a, b, c]
        adapters:
          - name: g
            structure: lora
            modules: [query, key, value]
            rank: 3
            alpha: 6
            tasks: [c, a]
          - name: p
            structure: lora
            modules: [dense]
            rank: 2
            alpha: 2
        """

    func planned() throws -> Plan {
        let checked = try XCTUnwrap(SpecTestSupport.checked(Self.yaml))
        let (plan, diagnostics) = Planner.plan(checked)
        XCTAssertEqual(diagnostics, [])
        return try XCTUnwrap(plan)
    }

    func interpreter(_ plan: Plan, threads: Int = 1) -> PlanInterpreter {
        let interpreter = PlanInterpreter(plan: plan, threads: threads)
        var random = TestRandom(seed: 7)
        _ = interpreter.storage.parameters.update(fromContentsOf: random.floats(plan.parameterCount, bound: 0.5))
        return interpreter
    }

    /// s·B·A of (task, layer, module) in float64 from the stored keys; nil when the group has no slice for the task.
    func delta(_ plan: Plan, _ interpreter: PlanInterpreter, task: String, layer: Int, module: String) -> [[Double]]? {
        let params = interpreter.storage.parameters
        let group = module == "dense" ? "p" : "g"
        let taskPart = group == "g" ? ".\(task)" : ""
        guard group == "p" || ["a", "c"].contains(task),
              let a = plan.parameter("\(group)\(taskPart).\(layer).\(module).A"),
              let b = plan.parameter("\(group)\(taskPart).\(layer).\(module).B") else { return nil }
        let r = a.shape[0], inF = a.shape[1], outF = b.shape[0]
        let s = group == "g" ? 6.0 / 3 : 2.0 / 2
        return (0..<outF).map { o in
            (0..<inF).map { i in s * (0..<r).reduce(0.0) { $0 + Double(params[b.offset + o * r + $1]) * Double(params[a.offset + $1 * inF + i]) } }
        }
    }

    func reference(_ plan: Plan, _ interpreter: PlanInterpreter, layer: Int, module: String, x: [Float], tasks: [Int32],
                   y: [Float]) -> [Double] {
        let names = ["a", "b", "c"]
        let outF = plan.pair(layer: layer, module: module)!.outFeatures, inF = x.count / tasks.count
        var out = y.map(Double.init)
        for (row, t) in tasks.enumerated() {
            guard let d = delta(plan, interpreter, task: names[Int(t)], layer: layer, module: module) else { continue }
            for o in 0..<outF { out[row * outF + o] += (0..<inF).reduce(0.0) { $0 + d[o][$1] * Double(x[row * inF + $1]) } }
        }
        return out
    }

    func testLayoutIsTaskMajorWithTaskKeys() throws {
        let plan = try planned()
        XCTAssertEqual(PlanVerifier.verify(plan), [])
        XCTAssertEqual(plan.tasks, ["a", "b", "c"])
        XCTAssertEqual(plan.groups[0].tasks, ["c", "a"])
        XCTAssertEqual(plan.groups[1].tasks, [])
        let keys = plan.parameters.map(\.key)
        XCTAssertEqual(keys.first, "g.c.0.query.A")
        let c = try XCTUnwrap(plan.parameter("g.c.1.value.B")), a = try XCTUnwrap(plan.parameter("g.a.1.value.B"))
        let block = plan.parameters.filter { $0.key.hasPrefix("g.c.") }.map(\.count).reduce(0, +)
        XCTAssertEqual(a.offset - c.offset, block, "task a's slice is task c's moved by one task block")
        XCTAssertEqual(TensorKey(parsing: "g.c.1.value.B")?.task, "c")
        XCTAssertEqual(TensorKey(parsing: "g.c.1.value.B")?.description, "g.c.1.value.B")
        XCTAssertNil(TensorKey(parsing: "p.0.dense.A")?.task)
        let strides = plan.groups[0].pairs[0].forward.contractions.flatMap { [$0.output, $0.a] + ($0.b.map { [$0] } ?? []) }
            .filter { $0.storage.isOwned }.map(\.taskStride)
        XCTAssertTrue(!strides.isEmpty && strides.allSatisfy { $0 != 0 }, "every owned view moves with the task")
        XCTAssertTrue(plan.groups[1].pairs[0].forward.contractions.allSatisfy { $0.a.taskStride == 0 && ($0.b?.taskStride ?? 0) == 0 })
    }

    /// Shuffled ids, sorted runs, one task, a task with no slice, every row a
    /// different task, a task absent: the float64 loop, and per-task calls bit for bit.
    func testMixedForwardMatchesReferenceAndPerTaskCalls() throws {
        let plan = try planned()
        let interpreter = interpreter(plan)
        var random = TestRandom(seed: 11)
        let cases: [[Int32]] = [[2, 0, 1, 2, 0, 0, 2, 1, 0], [0, 0, 0, 1, 2, 2, 2], [2, 2, 2, 2], [1, 1], [0, 1, 2], [2, 0, 2, 0, 2]]
        for ids in cases {
            let n = ids.count
            for (layer, module) in [(0, "query"), (1, "value"), (1, "dense")] {
                let pair = try XCTUnwrap(plan.pair(layer: layer, module: module))
                let x = random.floats(n * pair.inFeatures), y0 = random.floats(n * pair.outFeatures)
                var y = y0
                try x.withUnsafeBufferPointer { x in try ids.withUnsafeBufferPointer { ids in try y.withUnsafeMutableBufferPointer { y in
                    try interpreter.forward(layer: layer, module: module, x: x, rows: n, y: y, tasks: .perRow(ids))
                } } }
                assertClose(y, reference(plan, interpreter, layer: layer, module: module, x: x, tasks: ids, y: y0),
                            "\(ids) \(layer).\(module)", tolerance: 1e-6)
                // Each task's rows on their own, with task:.
                for t in 0..<3 {
                    let rows = ids.indices.filter { ids[$0] == t }
                    guard !rows.isEmpty else { continue }
                    let xt = rows.flatMap { x[($0 * pair.inFeatures)..<(($0 + 1) * pair.inFeatures)] }
                    var yt = rows.flatMap { y0[($0 * pair.outFeatures)..<(($0 + 1) * pair.outFeatures)] }
                    try xt.withUnsafeBufferPointer { xt in try yt.withUnsafeMutableBufferPointer { yt in
                        try interpreter.forward(layer: layer, module: module, x: xt, rows: rows.count, y: yt, tasks: .all(t))
                    } }
                    let mixed = rows.flatMap { y[($0 * pair.outFeatures)..<(($0 + 1) * pair.outFeatures)] }
                    XCTAssertEqual(mixed, yt, "\(ids) \(layer).\(module) task \(t): mixed rows equal a call of that task's rows")
                }
            }
            // The fused layer forward of query and key.
            let x = random.floats(n * 8)
            var q = [Float](repeating: 0, count: n * 6), k = [Float](repeating: 0, count: n * 5)
            try x.withUnsafeBufferPointer { x in try ids.withUnsafeBufferPointer { ids in
                try q.withUnsafeMutableBufferPointer { q in try k.withUnsafeMutableBufferPointer { k in
                    try interpreter.forwardLayer(layer: 1, modules: ["query", "key"], x: x, rows: n, outputs: [q, k], tasks: .perRow(ids))
                } } } }
            assertClose(q, reference(plan, interpreter, layer: 1, module: "query", x: x, tasks: ids, y: [Float](repeating: 0, count: n * 6)),
                        "fused query \(ids)", tolerance: 1e-6)
            assertClose(k, reference(plan, interpreter, layer: 1, module: "key", x: x, tasks: ids, y: [Float](repeating: 0, count: n * 5)),
                        "fused key \(ids)", tolerance: 1e-6)
        }
    }

    /// Mixed backward: dx and every task's gradients against the float64 VJP of
    /// the definition, and equal for 1 and 2 threads bit for bit; a gradient
    /// entry against central differences of Σ dy·y.
    func testMixedBackwardMatchesReferenceAndIsDeterministic() throws {
        let plan = try planned()
        let ids: [Int32] = [2, 0, 1, 2, 0, 0, 2, 1, 0, 2, 2]
        let n = ids.count
        var random = TestRandom(seed: 3)
        let x = random.floats(n * 8), dy = random.floats(n * 6)
        var results: [(dx: [Float], gradients: [Float])] = []
        for threads in [1, 2] {
            let interpreter = interpreter(plan, threads: threads)
            var dx = [Float](repeating: 0, count: n * 8)
            try x.withUnsafeBufferPointer { x in try dy.withUnsafeBufferPointer { dy in try ids.withUnsafeBufferPointer { ids in
                try dx.withUnsafeMutableBufferPointer { dx in
                    try interpreter.backward(layer: 1, module: "query", x: x, dy: dy, rows: n, dx: dx, tasks: .perRow(ids))
                } } } }
            results.append((dx, Array(interpreter.storage.gradients)))
            guard threads == 1 else { continue }
            // float64: dx = Σ_rows ΔW_tᵀ·dy; dB_t = s·Σ dy ⊗ (A_t x), dA_t = s·Σ (B_tᵀ dy) ⊗ x over task t's rows.
            let params = interpreter.storage.parameters
            var wantDx = [Double](repeating: 0, count: n * 8)
            var wantGrad = [Double](repeating: 0, count: plan.parameterCount)
            for (row, t) in ids.enumerated() {
                let name = ["a", "b", "c"][Int(t)]
                guard let d = delta(plan, interpreter, task: name, layer: 1, module: "query") else { continue }
                for i in 0..<8 { wantDx[row * 8 + i] = (0..<6).reduce(0.0) { $0 + d[$1][i] * Double(dy[row * 6 + $1]) } }
                let a = plan.parameter("g.\(name).1.query.A")!, b = plan.parameter("g.\(name).1.query.B")!
                for r in 0..<3 {
                    let ax = (0..<8).reduce(0.0) { $0 + Double(params[a.offset + r * 8 + $1]) * Double(x[row * 8 + $1]) }
                    let bdy = (0..<6).reduce(0.0) { $0 + Double(params[b.offset + $1 * 3 + r]) * Double(dy[row * 6 + $1]) }
                    for o in 0..<6 { wantGrad[b.offset + o * 3 + r] += 2 * Double(dy[row * 6 + o]) * ax }
                    for i in 0..<8 { wantGrad[a.offset + r * 8 + i] += 2 * bdy * Double(x[row * 8 + i]) }
                }
            }
            assertClose(dx, wantDx, "dx", tolerance: 1e-6)
            assertClose(Array(interpreter.storage.gradients), wantGrad, "gradients", tolerance: 1e-6)
            XCTAssertEqual(interpreter.storage.gradients.filter { $0 != 0 }.count, wantGrad.filter { $0 != 0 }.count,
                           "only the slices of the rows' tasks get a gradient")
            // Central difference on one entry of task a's B.
            let entry = plan.parameter("g.a.1.query.B")!.offset + 4
            func loss() throws -> Double {
                var y = [Float](repeating: 0, count: n * 6)
                try x.withUnsafeBufferPointer { x in try ids.withUnsafeBufferPointer { ids in try y.withUnsafeMutableBufferPointer { y in
                    try interpreter.forward(layer: 1, module: "query", x: x, rows: n, y: y, tasks: .perRow(ids)) } } }
                return zip(y, dy).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
            }
            let h: Float = 1e-2, saved = interpreter.storage.parameters[entry]
            interpreter.storage.parameters[entry] = saved + h
            let up = try loss()
            interpreter.storage.parameters[entry] = saved - h
            let down = try loss()
            interpreter.storage.parameters[entry] = saved
            XCTAssertEqual((up - down) / Double(2 * h), Double(interpreter.storage.gradients[entry]), accuracy: 1e-3)
        }
        XCTAssertEqual(results[0].dx, results[1].dx, "1 and 2 threads: dx bit for bit")
        XCTAssertEqual(results[0].gradients, results[1].gradients, "1 and 2 threads: gradients bit for bit")
    }

    func testMaterializePerTask() throws {
        let plan = try planned()
        let interpreter = interpreter(plan)
        for (t, name) in ["a", "b", "c"].enumerated() {
            var d = [Float](repeating: 7, count: 4 * 8)
            try d.withUnsafeMutableBufferPointer { try interpreter.materialize(layer: 0, module: "value", task: t, into: $0) }
            let want = delta(plan, interpreter, task: name, layer: 0, module: "value")?.flatMap { $0 } ?? [Double](repeating: 0, count: 32)
            assertClose(d, want, "ΔW of task \(name)", tolerance: 1e-6)
        }
    }

    /// Wrong task ids and calls without one: typed errors, nothing written.
    func testBadTaskArgumentsThrow() throws {
        let plan = try planned()
        let interpreter = interpreter(plan)
        let x = [Float](repeating: 1, count: 2 * 8)
        var y = [Float](repeating: 0, count: 2 * 6)
        func thrown(_ ids: PlanInterpreter.Tasks?) -> AdapterError? {
            do {
                try x.withUnsafeBufferPointer { x in try y.withUnsafeMutableBufferPointer { y in
                    if let ids {
                        try interpreter.forward(layer: 0, module: "query", x: x, rows: 2, y: y, tasks: ids)
                    } else {
                        try interpreter.forward(layer: 0, module: "query", x: x, rows: 2, y: y)
                    }
                } }
                return nil
            } catch { return error as? AdapterError }
        }
        XCTAssertEqual(thrown(.all(3)), .unknownTask(spec: "Multi", task: 3, row: nil, taskCount: 3))
        let bad: [Int32] = [0, -1], short: [Int32] = [0]
        XCTAssertEqual(bad.withUnsafeBufferPointer { thrown(.perRow($0)) }, .unknownTask(spec: "Multi", task: -1, row: 1, taskCount: 3))
        XCTAssertEqual(short.withUnsafeBufferPointer { thrown(.perRow($0)) },
                       .shapeMismatch(spec: "Multi", argument: "tasks of 0.query", count: 1, expected: 2))
        XCTAssertEqual(thrown(nil), .taskRequired(spec: "Multi", group: "g"))
        XCTAssertEqual(y, [Float](repeating: 0, count: 12), "nothing written")
        XCTAssertTrue(AdapterError.unknownTask(spec: "Multi", task: 3, row: nil, taskCount: 3).message.contains("task id 3"))
    }

    /// The verifier decides bounds and independence for every task: a task
    /// stride that pushes the last task past the buffer, or one on a token buffer, is found.
    func testVerifierChecksEveryTask() throws {
        var plan = try planned()
        XCTAssertEqual(PlanVerifier.verify(plan), [])
        var forward = plan.groups[0].pairs[0].forward
        forward = forward.indexingTasks { $0.storage == .parameters ? $0.taskStride * 50 : nil }
        plan.groups[0].pairs[0].forward = forward
        XCTAssertTrue(PlanVerifier.verify(plan).contains { $0.contains("task 1") && $0.contains("exceeds its buffer") })
        plan = try planned()
        plan.groups[0].pairs[0].forward = plan.groups[0].pairs[0].forward.indexingTasks { $0.storage == .input ? 8 : nil }
        XCTAssertTrue(PlanVerifier.verify(plan).contains { $0.contains("moves with a task") })
    }
}
