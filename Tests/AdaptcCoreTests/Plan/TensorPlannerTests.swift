import XCTest
@testable import AdaptcCore
import AdaptRuntime
import AdaptTestSupport

/// Tensor-train, CP and Tucker groups planned from their networks and run by
/// the interpreter, against the float64 definition (TensorReference), central
/// differences for gradients, and 1 vs 2 threads for determinism.
final class TensorPlannerTests: XCTestCase {
    static func spec(_ group: String, layers: Int = 3, modules: String = "{q: [6, 6], k: [6, 6]}",
                     inputs: String = "{attention: [q, k]}", tokens: String = "dynamic") -> String {
        """
        adaptc: 1
        name: T
        model:
          layers: \(layers)
          modules: \(modules)
          inputs: \(inputs)
        adapters:
          - name: g
            modules: [q, k]
            alpha: 3
        \(group.split(separator: "\n").map { "    " + $0 }.joined(separator: "\n"))
        codegen: {tokens: \(tokens)}
        """
    }

    func planned(_ source: String, file: StaticString = #filePath, line: UInt = #line) throws -> (CheckedSpec, Plan) {
        let checked = try SpecLoader.check(source: source, path: "t.adapt.yaml")
        let (plan, diagnostics) = Planner.plan(checked)
        XCTAssertEqual(diagnostics.filter { $0.severity == .error }, [], file: file, line: line)
        let plan_ = try XCTUnwrap(plan, file: file, line: line)
        XCTAssertEqual(PlanVerifier.verify(plan_), [], file: file, line: line)
        return (checked, plan_)
    }

    static let cases: [String] = [
        "structure: tensor-train\nfactor: {out: [2, 3], in: [3, 2]}\nrank: 3",
        "structure: tensor-train\norder: [in, layer, module, out]\nrank: 2",
        "structure: tensor-train\nfactor: {out: [2, 3], in: [3, 2]}\norder: [layer, out.0, in.0, module, out.1, in.1]\nrank: 2",
        "structure: tensor-train\norder: [out, layer, module, in]\nranks: [3, 2, 4]",
        "structure: tensor-train\nfactor: {out: [1, 6], in: [6, 1]}\nrank: 50",
        "structure: cp\nrank: 3",
        "structure: cp\nfactor: {out: [2, 3]}\nrank: 4\nscaling: rslora",
        "structure: tucker\nranks: {layer: full, module: full, out: 2, in: 3}",
        "structure: tucker\nrank: 2",
        "structure: tucker\nfactor: {in: [2, 3]}\nranks: {layer: 2, module: full, out: full, in.0: 1, in.1: 2}",
    ]

    func testEveryStructureMatchesTheDefinition() throws {
        for text in Self.cases {
            try check(Self.spec(text), gradients: true)
        }
    }

    /// Outputs a whole number of panels wide: prepare packs the last factor and
    /// forward runs the panel kernel (rows 11: a full tile of 8 and a remainder;
    /// 3 panels: a pair and a single one).
    func testWideOutputsReadPackedPanels() throws {
        let cases = ["structure: tensor-train\nfactor: {out: [4, 12]}\nrank: 3",
                     "structure: cp\nrank: 5", "structure: tucker\nrank: 2"]
        for text in cases {
            let source = Self.spec(text, modules: "{q: [48, 6], k: [48, 6]}")
            let (_, plan) = try planned(source)
            func products(_ program: Program) -> [PanelProduct] {
                program.contractions.compactMap { if case .gemm(let g)? = $0.lowered { return g.panelProduct } else { return nil } }
            }
            for program in plan.groups[0].pairs.map(\.forward) + plan.groups[0].layerForwards.map(\.program) {
                XCTAssertTrue(products(program).contains { if case .multiply(.fixed(3), _, _) = $0 { return $0.isPacked } else { return false } },
                              "\(text): forward does not read packed panels")
            }
            // Backward's dt = dy·B reads them too.
            for program in plan.groups[0].pairs.map(\.backward) + plan.groups[0].layerBackwards.map(\.program) {
                XCTAssertTrue(products(program).contains { if case .dot(.fixed(3), _, _, _) = $0 { return $0.isPacked } else { return false } },
                              "\(text): backward's dy·B does not read packed panels")
            }
            // The copies sit after all state that has a gradient, so preparedGradients is that prefix alone.
            let copies = plan.groups[0].prepare.stages.last!.map(\.output)
            XCTAssertLessThan(plan.preparedGradientCount, plan.preparedCount, text)
            XCTAssertTrue(copies.allSatisfy { $0.storage == .prepared && $0.offset.constant >= plan.preparedGradientCount }, text)
            let writes = plan.groups[0].prepare.contractions.map(\.output).filter { !copies.contains($0) }
            XCTAssertTrue(writes.allSatisfy { $0.end.constant <= plan.preparedGradientCount }, "\(text): own state past the prefix")
            try check(source, gradients: true, rows: 11)
        }
    }

    /// Forward on more rows than one block holds runs on row blocks (`RowBlocks`:
    /// two here, a block carrying at least `FixedBlocks.minimumWork`), each
    /// with its own rows and workspace.
    func testForwardOnRowBlocksMatchesTheDefinition() throws {
        for source in [Self.spec("structure: cp\nrank: 5", modules: "{q: [48, 6], k: [48, 6]}"),
                       Self.spec("structure: tensor-train\norder: [in, layer, module, out]\nrank: 2")] {
            let (_, plan) = try planned(source)
            let rows = Self.twoBlocks(plan.pairs.map(\.forward.flops.perToken).min()!)
            XCTAssertTrue(plan.groups[0].layerForwards.allSatisfy(\.program.mapsRowsIndependently))
            XCTAssertTrue(plan.groups[0].pairs.allSatisfy(\.forward.mapsRowsIndependently))
            XCTAssertFalse(plan.groups[0].pairs.contains(where: \.backward.mapsRowsIndependently), "backward sums over rows")
            for program in plan.groups[0].pairs.map(\.forward) + plan.groups[0].layerForwards.map(\.program) {
                XCTAssertGreaterThanOrEqual(FixedBlocks(extent: rows, unitWork: program.flops.perToken, panel: RowBlocks.rowMultiple).count,
                                            2, "one row block only")
            }
            try check(source, gradients: false, rows: rows)
        }
    }

    /// Rows enough for two row blocks (`RowBlocks`) of a program doing `work` flops a row.
    static func twoBlocks(_ work: Int) -> Int {
        let length = (FixedBlocks.minimumWork + work - 1) / work
        return (length + RowBlocks.rowMultiple - 1) / RowBlocks.rowMultiple * RowBlocks.rowMultiple + 37
    }

    /// Backward's token-side steps run on row blocks (`Program.rowLocalStages`,
    /// two blocks here: each block writes its rows of the whole intermediates),
    /// its sums over rows after, cut into pieces. dx against the definition; the
    /// parameter gradients against the same rows given in calls of 50 rows
    /// (one block each, a path `check` holds to central differences); 1 and 2
    /// threads bitwise equal.
    func testBackwardOnRowBlocksMatchesTheDefinition() throws {
        for text in ["structure: tensor-train\nrank: 3", "structure: cp\nrank: 5", "structure: tucker\nrank: 2",
                     "structure: tensor-train\nfactor: {out: [4, 12]}\nrank: 3"] {
            let source = Self.spec(text, modules: "{q: [48, 6], k: [48, 6]}")
            let (checked, plan) = try planned(source)
            let rows = Self.twoBlocks(plan.pairs.map(\.backward.rowLocalFlops.perToken).min()!)
            for pair in plan.pairs {
                let backward = pair.backward
                XCTAssertGreaterThan(backward.rowLocalStages, 0, "\(text): no row-local stages")
                XCTAssertLessThan(backward.rowLocalStages, backward.stages.count, "\(text): nothing sums over rows")
                XCTAssertGreaterThanOrEqual(FixedBlocks(extent: rows, unitWork: backward.rowLocalFlops.perToken, panel: RowBlocks.rowMultiple).count,
                                            2, "\(text): one row block only")
                XCTAssertEqual(FixedBlocks(extent: 50, unitWork: backward.rowLocalFlops.perToken, panel: RowBlocks.rowMultiple).count, 1)
            }
            var random = TestRandom(seed: 17)
            let values = random.floats(plan.parameterCount)
            let x = random.floats(rows * 6), dy = random.floats(rows * 48)
            let delta = TensorReference(group: checked.groups[0], plan: plan).delta(values.map(Double.init), li: 1, mi: 1)
            var dxExpected = [Double](repeating: 0.25, count: rows * 6)
            for r in 0..<rows { for a in 0..<48 { for b in 0..<6 { dxExpected[r * 6 + b] += Double(dy[r * 48 + a]) * delta[a * 6 + b] } } }
            /// dx and the gradients after backward on `chunks` of rows, then finishBackward.
            func backward(threads: Int, chunks: [Range<Int>]) throws -> (dx: [Float], gradients: [Float]) {
                let interpreter = PlanInterpreter(plan: plan, threads: threads)
                for i in values.indices { interpreter.storage.parameters[i] = values[i] }
                interpreter.prepare()
                var dx = [Float](repeating: 0.25, count: rows * 6)
                for chunk in chunks {
                    try Array(x[chunk.lowerBound * 6..<chunk.upperBound * 6]).withUnsafeBufferPointer { xb in
                        try Array(dy[chunk.lowerBound * 48..<chunk.upperBound * 48]).withUnsafeBufferPointer { dyb in
                            try dx.withUnsafeMutableBufferPointer {
                                try interpreter.backward(layer: 1, module: "k", x: xb, dy: dyb, rows: chunk.count,
                                                         dx: UnsafeMutableBufferPointer(rebasing: $0[chunk.lowerBound * 6..<chunk.upperBound * 6]))
                            }
                        }
                    }
                }
                interpreter.finishBackward()
                return (dx, Array(interpreter.storage.gradients))
            }
            let one = try backward(threads: 1, chunks: [0..<rows]), two = try backward(threads: 2, chunks: [0..<rows])
            let small = try backward(threads: 1, chunks: stride(from: 0, to: rows, by: 50).map { $0..<min(rows, $0 + 50) })
            assertClose(one.dx, dxExpected, "\(text) dx")
            assertClose(small.dx, dxExpected, "\(text) dx, 50 rows a call")
            assertClose(one.gradients, small.gradients.map(Double.init), "\(text) parameter gradients")
            XCTAssertEqual(one.dx + one.gradients, two.dx + two.gradients, "\(text): 1 and 2 threads differ")
        }
    }

    /// `adaptc plan --verbose` shows the layer-fused backward too, with its two phases.
    func testPrintedPlanShowsTheFusedBackwardAndItsPhases() throws {
        let (_, plan) = try planned(Self.spec("structure: cp\nrank: 5", modules: "{q: [48, 6], k: [48, 6]}"))
        let text = plan.description
        XCTAssertTrue(text.contains("  layer 0 backward of q, k (one input):"), text)
        let fused = try XCTUnwrap(text.range(of: "  layer 0 backward of q, k (one input):"))
        let rest = text[fused.upperBound...]
        let blocks = try XCTUnwrap(rest.range(of: "      on row blocks:")), all = try XCTUnwrap(rest.range(of: "      on all rows:"))
        XCTAssertLessThan(blocks.lowerBound, all.lowerBound)
    }

    func testSingleLayerAndLayerSubsets() throws {
        try check(Self.spec("structure: tensor-train\nrank: 2", layers: 1), gradients: true)
        try check(Self.spec("structure: cp\nlayers: [0, 2]\nrank: 2"), gradients: false)
    }

    /// Every order of a 4-mode and of a 5-mode tensor-train (out split in two).
    func testEveryOrderOfSmallTensorTrains() throws {
        func permutations(_ items: [String]) -> [[String]] {
            items.count <= 1 ? [items] : items.indices.flatMap { i in
                permutations(Array(items[..<i] + items[(i + 1)...])).map { [items[i]] + $0 }
            }
        }
        for order in permutations(["layer", "module", "out", "in"]) {
            try check(Self.spec("structure: tensor-train\norder: [\(order.joined(separator: ", "))]\nrank: 2"), gradients: false)
        }
        for (k, order) in permutations(["layer", "module", "out.0", "out.1", "in"]).enumerated() {
            try check(Self.spec("structure: tensor-train\nfactor: {out: [2, 3]}\norder: [\(order.joined(separator: ", "))]\nrank: 2"),
                      gradients: k % 15 == 0)
        }
    }

    /// The rules of DESIGN §2 come out of the search: a bond between in- and
    /// out-modes costs per token what a LoRA of that rank costs.
    func testBondSeparatingInFromOutCostsALoRA() throws {
        let (_, plan) = try planned(Self.spec("structure: tensor-train\nfactor: {out: [2, 3], in: [3, 2]}\nrank: 3",
                                              modules: "{q: [6, 6], k: [6, 6]}"))
        let pair = plan.groups[0].pairs[0]
        // LoRA of rank ρ (the bond out.1|in.0 is clipped to min(6, 6) and 3): 2·n·ρ·(in + out).
        XCTAssertEqual(pair.forward.flops.perToken, 2 * 3 * (6 + 6))
        XCTAssertFalse(plan.groups[0].prepare.isEmpty, "B[l,m] and A are hoisted into prepare")
    }

    /// An interleaved (TT-matrix) order with many tokens: materialising ΔW in prepare wins.
    func testInterleavedOrderMaterialisesWhenCheaper() throws {
        let (_, plan) = try planned(Self.spec("structure: tensor-train\nfactor: {out: [2, 3], in: [3, 2]}\norder: [out.0, in.0, out.1, in.1, layer, module]\nrank: 4",
                                              tokens: "4096"))
        let pair = plan.groups[0].pairs[0]
        XCTAssertEqual(pair.forward.contractions.count, 1, "one product with the prepared ΔW[l, m]")
        XCTAssertEqual(pair.forward.flops.perToken, 2 * 36)
        XCTAssertTrue(plan.groups[0].path.contains { $0.hasPrefix("prepare:") })
    }

    /// Past the exact search's limit the planner falls back to greedy and says so.
    func testLargeNetworkFallsBackToGreedy() throws {
        let (_, plan) = try planned(Self.spec("structure: tensor-train\nfactor: {out: [2, 2, 2, 2, 2, 2, 2, 2], in: [2, 2, 2, 2, 2, 2, 2, 2]}\nrank: 2",
                                              modules: "{q: [256, 256], k: [256, 256]}"))
        XCTAssertEqual(plan.groups[0].optimizer, "greedy")
        XCTAssertTrue(plan.groups[0].path[0].contains("greedy") && plan.groups[0].path[0].contains("exact search skipped"),
                      plan.groups[0].path[0])
    }

    func testPreparedStateTooLargeIsRefusedWithItsSize() throws {
        setenv("ADAPTC_MEMORY_LIMIT", "1000", 1)
        defer { unsetenv("ADAPTC_MEMORY_LIMIT") }
        let checked = try SpecLoader.check(source: Self.spec("structure: tensor-train\norder: [in, layer, module, out]\nrank: 2"),
                                           path: "t.adapt.yaml")
        let (plan, diagnostics) = Planner.plan(checked)
        XCTAssertNil(plan)
        XCTAssertEqual(diagnostics.count, 1)
        XCTAssertTrue(diagnostics[0].message.contains("of prepared state") && diagnostics[0].message.contains("1000 bytes"),
                      diagnostics[0].message)
    }

    /// Forward after a parameter update without prepare() re-prepares by itself.
    func testStaleParametersArePreparedAgain() throws {
        let (checked, plan) = try planned(Self.spec("structure: tensor-train\nrank: 2"))
        let interpreter = PlanInterpreter(plan: plan, threads: 1)
        var random = TestRandom(seed: 3)
        let values = random.floats(plan.parameterCount)
        for i in values.indices { interpreter.storage.parameters[i] = values[i] }
        interpreter.prepare()
        let before = try materialize(interpreter, plan.pairs[0])
        interpreter.storage.parameters[0] += 1
        let after = try materialize(interpreter, plan.pairs[0])
        XCTAssertNotEqual(before, after)
        let reference = TensorReference(group: checked.groups[0], plan: plan)
        assertClose(after, reference.delta(Array(interpreter.storage.parameters).map(Double.init), li: 0, mi: 0), "after update")
    }

    private func materialize(_ interpreter: PlanInterpreter, _ pair: PairPlan) throws -> [Float] {
        var delta = [Float](repeating: .nan, count: pair.outFeatures * pair.inFeatures)
        try delta.withUnsafeMutableBufferPointer { try interpreter.materialize(layer: pair.layer, module: pair.module, into: $0) }
        return delta
    }

    /// materialize, forward (per pair and fused), backward (dx and, after
    /// finishBackward, every parameter's gradient) against the definition.
    func check(_ source: String, gradients: Bool, rows: Int = 3, file: StaticString = #filePath, line: UInt = #line) throws {
        let (checked, plan) = try planned(source, file: file, line: line)
        let group = checked.groups[0]
        let reference = TensorReference(group: group, plan: plan)
        var random = TestRandom(seed: 11)
        let values = random.floats(plan.parameterCount)
        let parameters = values.map(Double.init)
        var results: [[Float]] = []
        for threads in [1, 2] {
            let interpreter = PlanInterpreter(plan: plan, threads: threads)
            for i in values.indices { interpreter.storage.parameters[i] = values[i] }
            interpreter.prepare()
            var outputs: [Float] = []
            var random = TestRandom(seed: 5)
            for (li, layer) in group.layers.enumerated() {
                var fusedExpected: [[Double]] = []
                let n = rows
                let x = random.floats(n * group.modules[0].inFeatures)
                for (mi, module) in group.modules.enumerated() {
                    let pair = try XCTUnwrap(plan.pair(layer: layer, module: module.name))
                    let delta = reference.delta(parameters, li: li, mi: mi)
                    let got = try materialize(interpreter, pair)
                    assertClose(got, delta, "\(source) materialize \(pair.key)", file: file, line: line)
                    let (o, i) = (module.outFeatures, module.inFeatures)
                    var y = [Float](repeating: 0.5, count: n * o)
                    try x.withUnsafeBufferPointer { xb in
                        try y.withUnsafeMutableBufferPointer { try interpreter.forward(layer: layer, module: module.name, x: xb, rows: n, y: $0) }
                    }
                    var expected = [Double](repeating: 0.5, count: n * o)
                    for r in 0..<n { for a in 0..<o { for b in 0..<i { expected[r * o + a] += Double(x[r * i + b]) * delta[a * i + b] } } }
                    assertClose(y, expected, "\(source) forward \(pair.key)", file: file, line: line)
                    fusedExpected.append(expected.map { $0 - 0.5 })
                    outputs += y
                    // dx = dy·ΔW.
                    let dy = random.floats(n * o)
                    var dx = [Float](repeating: 0, count: n * i)
                    try x.withUnsafeBufferPointer { xb in
                        try dy.withUnsafeBufferPointer { dyb in
                            try dx.withUnsafeMutableBufferPointer {
                                try interpreter.backward(layer: layer, module: module.name, x: xb, dy: dyb, rows: n, dx: $0)
                            }
                        }
                    }
                    var dxExpected = [Double](repeating: 0, count: n * i)
                    for r in 0..<n { for a in 0..<o { for b in 0..<i { dxExpected[r * i + b] += Double(dy[r * o + a]) * delta[a * i + b] } } }
                    assertClose(dx, dxExpected, "\(source) dx \(pair.key)", file: file, line: line)
                    outputs += dx
                    if gradients && threads == 1 {
                        let fresh = PlanInterpreter(plan: plan, threads: 1)
                        for i in values.indices { fresh.storage.parameters[i] = values[i] }
                        try checkGradients(fresh, reference, li: li, mi: mi, x: x, dy: dy, n: n, parameters: parameters,
                                           source: source, file: file, line: line)
                    }
                }
                if let fused = plan.groups[0].layerForwards.first(where: { $0.layer == layer }) {
                    var ys = group.modules.map { [Float](repeating: 0, count: n * $0.outFeatures) }
                    try x.withUnsafeBufferPointer { xb in
                        let buffers = ys.map { UnsafeMutableBufferPointer<Float>.allocate(capacity: $0.count) }
                        defer { buffers.forEach { $0.deallocate() } }
                        for b in buffers.indices { buffers[b].initialize(repeating: 0) }
                        try interpreter.forwardLayer(layer: layer, modules: fused.modules, x: xb, rows: n, outputs: buffers)
                        for b in buffers.indices { ys[b] = Array(buffers[b]) }
                    }
                    for (mi, y) in ys.enumerated() {
                        assertClose(y, fusedExpected[mi], "\(source) fused forward layer \(layer) module \(mi)", file: file, line: line)
                        outputs += y
                    }
                }
            }
            interpreter.finishBackward()
            outputs += Array(interpreter.storage.gradients)
            results.append(outputs)
        }
        let differ = zip(results[0], results[1]).filter { $0.0 != $0.1 }.count
        XCTAssertTrue(results[0].count == results[1].count && differ == 0,
                      "\(source): 1 and 2 threads differ in \(differ) of \(results[0].count) values", file: file, line: line)
    }

    /// Gradient of L = Σ dy ⊙ (x·ΔW[l,m]ᵀ) w.r.t. every parameter after one
    /// backward + finishBackward, against central differences of the reference.
    private func checkGradients(_ interpreter: PlanInterpreter, _ reference: TensorReference, li: Int, mi: Int,
                                x: [Float], dy: [Float], n: Int, parameters: [Double], source: String,
                                file: StaticString, line: UInt) throws {
        let module = reference.group.modules[mi], layer = reference.group.layers[li]
        let (o, i) = (module.outFeatures, module.inFeatures)
        var dx = [Float](repeating: 0, count: n * i)
        try x.withUnsafeBufferPointer { xb in
            try dy.withUnsafeBufferPointer { dyb in
                try dx.withUnsafeMutableBufferPointer { try interpreter.backward(layer: layer, module: module.name, x: xb, dy: dyb, rows: n, dx: $0) }
            }
        }
        interpreter.finishBackward()
        func loss(_ p: [Double]) -> Double {
            let delta = reference.delta(p, li: li, mi: mi)
            var total = 0.0
            for r in 0..<n { for a in 0..<o { for b in 0..<i { total += Double(dy[r * o + a]) * Double(x[r * i + b]) * delta[a * i + b] } } }
            return total
        }
        var expected = [Double](repeating: 0, count: parameters.count)
        let h = 1e-4
        for j in parameters.indices {
            var plus = parameters, minus = parameters
            plus[j] += h
            minus[j] -= h
            expected[j] = (loss(plus) - loss(minus)) / (2 * h)
        }
        assertClose(Array(interpreter.storage.gradients), expected, "\(source) parameter gradients \(layer).\(module.name)",
                    tolerance: 1e-4, file: file, line: line)
    }
}

/// The layer-fused backward (derived as the VJP of the fused forward, the
/// shared input-side value's gradient accumulated over modules) against the
/// per-pair backward it replaces: same dx, same gradients after finishBackward.
final class FusedBackwardTests: XCTestCase {
    func testFusedBackwardMatchesPerPairBackward() throws {
        let specs = TensorPlannerTests.cases.prefix(8).map { TensorPlannerTests.spec($0) }
        for source in specs {
            let checked = try SpecLoader.check(source: source, path: "t.adapt.yaml")
            try compare(try XCTUnwrap(Planner.plan(checked).0), source)
        }
        try compare(try XCTUnwrap(Planner.plan(LoRAFixtures.mixed()).0), "lora mixed")
    }

    /// Four modules reading one `x`: the shared value's gradient gets four
    /// contributions, computed into partials side by side and summed after
    /// (`AccumulationSplit`); the plan must show the partials (shapes large
    /// enough that the low-rank path beats materialising ΔW).
    func testFourModulesSumTheirPartials() throws {
        for group in ["structure: tensor-train\nrank: 3", "structure: cp\nrank: 3", "structure: tucker\nrank: 2"] {
            let source = """
            adaptc: 1
            name: T
            model:
              layers: 2
              modules: {q: [48, 40], k: [48, 40], v: [48, 40], o: [48, 40]}
              inputs: {attention: [q, k, v, o]}
            adapters:
              - name: g
                modules: [q, k, v, o]
                alpha: 3
            \(group.split(separator: "\n").map { "    " + $0 }.joined(separator: "\n"))
            """
            let plan = try XCTUnwrap(Planner.plan(try SpecLoader.check(source: source, path: "t.adapt.yaml")).0)
            let outputs = plan.groups.flatMap(\.layerBackwards).flatMap(\.program.contractions).map(\.output.name)
            XCTAssertTrue(outputs.contains { $0.contains(".part") }, "\(group): no partials in \(outputs)")
            try compare(plan, group)
        }
    }

    private func compare(_ plan: Plan, _ what: String) throws {
        let fusedPrograms = plan.groups.flatMap(\.layerBackwards)
        XCTAssertFalse(fusedPrograms.isEmpty, "\(what): no fused backward")
        var random = TestRandom(seed: 9)
        let values = random.floats(plan.parameterCount)
        let fused = PlanInterpreter(plan: plan, threads: 2), single = PlanInterpreter(plan: plan, threads: 1)
        for i in values.indices { fused.storage.parameters[i] = values[i]; single.storage.parameters[i] = values[i] }
        for program in fusedPrograms {
            let pairs = program.modules.map { plan.pair(layer: program.layer, module: $0)! }
            let n = 4, width = pairs[0].inFeatures
            let x = random.floats(n * width)
            let dys = pairs.map { random.floats(n * $0.outFeatures) }
            var dxFused = [Float](repeating: 0.25, count: n * width), dxSingle = dxFused
            try x.withUnsafeBufferPointer { xb in
                var pointers: [UnsafeMutableBufferPointer<Float>] = dys.map { dy in
                    let b = UnsafeMutableBufferPointer<Float>.allocate(capacity: dy.count)
                    _ = b.initialize(from: dy)
                    return b
                }
                defer { pointers.forEach { $0.deallocate() }; pointers = [] }
                try dxFused.withUnsafeMutableBufferPointer {
                    try fused.backwardLayer(layer: program.layer, modules: program.modules, x: xb,
                                            dys: pointers.map { UnsafeBufferPointer($0) }, rows: n, dx: $0)
                }
                for (pair, dy) in zip(pairs, pointers) {
                    try dxSingle.withUnsafeMutableBufferPointer {
                        try single.backward(layer: pair.layer, module: pair.module, x: xb, dy: UnsafeBufferPointer(dy), rows: n, dx: $0)
                    }
                }
            }
            assertClose(dxFused, dxSingle.map(Double.init), "\(what) layer \(program.layer) fused dx")
        }
        fused.finishBackward()
        single.finishBackward()
        assertClose(Array(fused.storage.gradients), Array(single.storage.gradients).map(Double.init), "\(what) fused gradients")
        XCTAssertTrue(fused.storage.gradients.contains { $0 != 0 }, what)
    }
}
