import XCTest
@testable import AdaptcCore
import AdaptRuntime
import AdaptTestSupport

/// The interpreter running a LoRA plan against a naive float64 loop over
/// ΔW = s·B·A (DESIGN §2), written here independently of the plan.
final class LoRAPlannerTests: XCTestCase {
    func plan(_ checked: CheckedSpec) throws -> Plan {
        let (plan, diagnostics) = Planner.plan(checked)
        XCTAssertEqual(diagnostics, [])
        return try XCTUnwrap(plan)
    }

    func testPlanVerifiesAndLaysOutParameters() throws {
        let plan = try plan(LoRAFixtures.mixed())
        XCTAssertEqual(PlanVerifier.verify(plan), [])
        // Per layer: A of every module, then B of every module; 2.key has rank 3.
        XCTAssertEqual(plan.parameters.map(\.key).prefix(6),
                       ["attn.0.query.A", "attn.0.key.A", "attn.0.mlp.up.A", "attn.0.query.B", "attn.0.key.B", "attn.0.mlp.up.B"])
        XCTAssertEqual(plan.parameter("attn.2.key.A")?.shape, [3, 16])
        XCTAssertEqual(plan.parameterCount, 2 * (4 * 16 + 4 * 16 + 4 * 24 + 24 * 4 + 8 * 4 + 40 * 4) - 16 - 8)
        // query and key read the same input size: fused per layer; mlp.up is alone.
        XCTAssertEqual(plan.groups[0].layerForwards.map(\.modules), [["query", "key"], ["query", "key"]])
        XCTAssertEqual(plan.pair(layer: 2, module: "key")?.scale, 5.0 / 3.0)
    }

    /// The order comes from the path optimizer, not a fixed recipe: BERT-sized
    /// maps get the skinny products; the 8×16 `key` map is cheaper through ΔW.
    func testForwardOrderIsChosenByCost() throws {
        let plan = try plan(LoRAFixtures.mixed())
        let query = try XCTUnwrap(plan.pair(layer: 0, module: "query")).forward.contractions
        XCTAssertEqual(query.map(\.output.name), ["z", "y"])
        XCTAssertEqual(query[0].output.modes, ["n", "r"])
        let key = try XCTUnwrap(plan.pair(layer: 0, module: "key")).forward.contractions
        XCTAssertEqual(Set(key[0].output.modes), ["i", "o"], "ΔW first for the tiny map")
        XCTAssertEqual(plan.workspace.constant, 256, "backward keeps ΔW of key [8, 16] and its gradient in the workspace")
    }

    func testSharedUsesOneFactorPairPerModule() throws {
        let plan = try plan(LoRAFixtures.mixed(shared: true))
        XCTAssertEqual(plan.parameters.count, 6)
        XCTAssertEqual(plan.parameters[0].key, "attn.shared.query.A")
    }

    /// Wrong calls get the same typed `AdapterError` cases generated code throws,
    /// so an app can `switch` on them whichever runs the plan.
    func testInterpreterThrowsTypedErrors() throws {
        let plan = try plan(LoRAFixtures.mixed())
        let interpreter = PlanInterpreter(plan: plan, threads: 1)
        let x = [Float](repeating: 0, count: 16), short = [Float](repeating: 0, count: 15)
        var y = [Float](repeating: 0, count: 24)
        func thrown(_ body: () throws -> Void) -> AdapterError? {
            do { try body(); return nil } catch { return error as? AdapterError }
        }
        let unknown = x.withUnsafeBufferPointer { x in y.withUnsafeMutableBufferPointer { y in
            thrown { try interpreter.forward(layer: 9, module: "query", x: x, rows: 1, y: y) } } }
        XCTAssertEqual(unknown, .unknownPair(spec: plan.specName, layer: 9, module: "query"))
        let shape = short.withUnsafeBufferPointer { x in y.withUnsafeMutableBufferPointer { y in
            thrown { try interpreter.forward(layer: 0, module: "query", x: x, rows: 1, y: y) } } }
        XCTAssertEqual(shape, .shapeMismatch(spec: plan.specName, argument: "x of 0.query", count: 15, expected: 16))
        let outputs = x.withUnsafeBufferPointer { x in y.withUnsafeMutableBufferPointer { y in
            thrown { try interpreter.forwardLayer(layer: 0, modules: ["query", "key"], x: x, rows: 1, outputs: [y]) } } }
        XCTAssertEqual(outputs, .outputCountMismatch(spec: plan.specName, modules: 2, outputs: 1))
    }

    func testInterpreterMatchesFloat64Reference() throws {
        for shared in [false, true] {
            for scaling in [Scaling.standard, .rslora] {
                let checked = LoRAFixtures.mixed(shared: shared, scaling: scaling)
                let plan = try plan(checked)
                let interpreter = PlanInterpreter(plan: plan, threads: 2)
                var random = TestRandom(seed: 7)
                for i in 0..<plan.parameterCount { interpreter.storage.parameters[i] = random.uniform() }
                for n in [1, 3, 64] {
                    for pair in plan.pairs {
                        try checkPair(pair, checked: checked, plan: plan, interpreter: interpreter, n: n, random: &random)
                    }
                }
            }
        }
    }

    private func checkPair(_ pair: PairPlan, checked: CheckedSpec, plan: Plan, interpreter: PlanInterpreter,
                           n: Int, random: inout TestRandom) throws {
        let group = checked.groups[0]
        let label = group.group.shared ? "shared" : String(pair.layer)
        let a = plan.parameter("attn.\(label).\(pair.module).A")!, b = plan.parameter("attn.\(label).\(pair.module).B")!
        let p = interpreter.storage.parameters
        let r = a.shape[0], inF = pair.inFeatures, outF = pair.outFeatures
        // Reference scale from the spec, not the plan.
        let rank = group.rank(layer: pair.layer, module: pair.module)
        let alpha = group.alpha(layer: pair.layer, module: pair.module)!
        let s = group.group.scaling == .standard ? alpha / Double(rank) : alpha / Double(rank).squareRoot()
        var delta = [Double](repeating: 0, count: outF * inF)
        for o in 0..<outF { for i in 0..<inF { for k in 0..<r {
            delta[o * inF + i] += s * Double(p[b.offset + o * r + k]) * Double(p[a.offset + k * inF + i])
        } } }
        // materialize
        var got = [Float](repeating: .nan, count: outF * inF)
        try got.withUnsafeMutableBufferPointer { try interpreter.materialize(layer: pair.layer, module: pair.module, into: $0) }
        assertClose(got, delta, "materialize \(pair.key)")
        // forward: y0 + x·ΔWᵀ
        let x = random.floats(n * inF), y0 = random.floats(n * outF)
        var y = y0
        try x.withUnsafeBufferPointer { x in try y.withUnsafeMutableBufferPointer { y in
            try interpreter.forward(layer: pair.layer, module: pair.module, x: x, rows: n, y: y) } }
        var expected = y0.map(Double.init)
        for row in 0..<n { for o in 0..<outF { for i in 0..<inF { expected[row * outF + o] += Double(x[row * inF + i]) * delta[o * inF + i] } } }
        assertClose(y, expected, "forward \(pair.key) n=\(n)")
    }
}
