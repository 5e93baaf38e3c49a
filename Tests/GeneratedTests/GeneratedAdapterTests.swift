import XCTest
import AdaptRuntime
@testable import AdaptcCore
import GeneratedAdapters
import AdaptTestSupport

/// Every spec in Specs/ has a checked-in generated type; each is checked against
/// the interpreter, a float64 reference and finite differences (DESIGN §6).
final class GeneratedAdapterTests: XCTestCase {
    func run<A: GeneratedAdapter>(_ type: A.Type, _ file: String, pairs select: (([PairPlan]) -> [PairPlan])? = nil,
                                  tokens: [Int] = [1, 3, 64], materialize: Bool = true) throws {
        var harness = try GeneratedAdapterHarness<A>(spec: file)
        XCTAssertEqual(A.parameterLayout, harness.plan.parameters, "layout of \(file)")
        XCTAssertEqual(A.specHash, SpecHash.hash(harness.checked))
        harness.randomizeParameters()
        let pairs = select?(harness.plan.pairs) ?? harness.plan.pairs
        for pair in pairs {
            for n in tokens {
                try harness.checkForward(pair, n: n)
                try harness.checkBackward(pair, n: n)
            }
            try harness.checkFiniteDifferences(pair, n: 3)
            if materialize { try harness.checkMaterialize(pair) }
        }
        for n in tokens { try harness.checkLayerForwards(n: n) }
    }

    func testTinyQv() throws { try run(TinyQvAdapter.self, "tiny-qv.adapt.yaml") }

    func testBertQv() throws {
        try run(BertQvAdapter.self, "bert-qv.adapt.yaml", pairs: { [$0.first!, $0[13], $0.last!] })
    }

    func testBertDroppedSharedAndOverrides() throws {
        // Every overridden pair, a plain one, and shared pairs in two layers.
        try run(BertDroppedAdapter.self, "bert-dropped.adapt.yaml", pairs: { pairs in
            pairs.filter { ["6.attention.self.key", "7.attention.self.value", "11.attention.self.query", "8.attention.self.key",
                            "0.attention.self.value", "5.attention.self.value"].contains($0.key) }
        })
    }

    func testMixedMlpRsLoRA() throws {
        try run(MixedMlpAdapter.self, "mixed-mlp.adapt.yaml", pairs: { [$0[0], $0[1]] })
    }

    func testBenchLoraSinglePair() throws {
        // Materialize (268M multiply-adds in a debug-build reference) is covered by the other specs.
        try run(BenchLoraAdapter.self, "bench-lora.adapt.yaml", tokens: [1], materialize: false)
    }

    func testBenchDecodeLayer() throws {
        // The seven LLaMA-7B-shaped maps at n 1 (the decode benchmark); materialize as for BenchLora.
        try run(BenchDecodeAdapter.self, "bench-decode.adapt.yaml", tokens: [1], materialize: false)
    }

    /// merge then unmerge restores W; merged W applied to x equals base + adapter.
    func testMergeAndUnmergeInPlace() throws {
        var harness = try GeneratedAdapterHarness<TinyQvAdapter>(spec: "tiny-qv.adapt.yaml")
        harness.randomizeParameters()
        let adapter = harness.adapter
        var random = TestRandom(seed: 5)
        let base = random.floats(64 * 64), x = random.floats(3 * 64)
        var merged = base
        try merged.withUnsafeMutableBufferPointer { try adapter.merge(layer: 3, module: .attentionSelfValue, into: $0) }
        let delta = try adapter.materialize(layer: 3, module: .attentionSelfValue)
        assertClose(merged, zip(base, delta).map { Double($0) + Double($1) }, "merged W")
        // x·(W + ΔW)ᵀ = x·Wᵀ + x·ΔWᵀ
        let viaAdapter = try adapter.forward(layer: 3, module: .attentionSelfValue, x: x, rows: 3)
        for row in 0..<3 {
            for o in 0..<64 {
                var mergedOut = 0.0, baseOut = 0.0
                for i in 0..<64 {
                    mergedOut += Double(x[row * 64 + i]) * Double(merged[o * 64 + i])
                    baseOut += Double(x[row * 64 + i]) * Double(base[o * 64 + i])
                }
                XCTAssertEqual(mergedOut, baseOut + Double(viaAdapter[row * 64 + o]), accuracy: 1e-4)
            }
        }
        var restored = merged
        try restored.withUnsafeMutableBufferPointer { try adapter.merge(layer: 3, module: .attentionSelfValue, into: $0, unmerge: true) }
        assertClose(restored, base.map(Double.init), "unmerged W")
        var interpreted = base
        try interpreted.withUnsafeMutableBufferPointer {
            try harness.interpreter.merge(layer: 3, module: "attention.self.value", into: $0)
        }
        assertClose(interpreted, merged.map(Double.init), "interpreter merge")
        var wrong = [Float](repeating: 0, count: 10)
        XCTAssertThrowsError(try wrong.withUnsafeMutableBufferPointer { try adapter.merge(layer: 3, module: .attentionSelfValue, into: $0) })
    }

    func testArgumentsAreCheckedNotTrapped() throws {
        let adapter = TinyQvAdapter(threads: 1)
        XCTAssertThrowsError(try adapter.forward(layer: 0, module: .attentionSelfQuery, x: [Float](repeating: 0, count: 63), rows: 1))
        XCTAssertThrowsError(try adapter.forward(layer: 0, module: .attentionSelfKey, x: [Float](repeating: 0, count: 64), rows: 1)) { error in
            XCTAssertTrue("\(error)".contains("no adapter for layer 0 module attention.self.key"), "\(error)")
        }
        XCTAssertThrowsError(try adapter.forward(layer: 4, module: .attentionSelfQuery, x: [Float](repeating: 0, count: 64), rows: 1))
        XCTAssertThrowsError(try adapter.forward(layer: -1, module: .attentionSelfQuery, x: [Float](repeating: 0, count: 64), rows: 1))
        XCTAssertThrowsError(try adapter.backward(layer: 0, module: .attentionSelfQuery, x: [Float](repeating: 0, count: 64),
                                                  dy: [Float](repeating: 0, count: 65), rows: 1))
        XCTAssertEqual(try adapter.forward(layer: 0, module: .attentionSelfQuery, x: [], rows: 0), [])
        // The fused entry points check too: an empty x with rows > 0 throws instead of trapping.
        let y = UnsafeMutableBufferPointer<Float>.allocate(capacity: 128)
        defer { y.deallocate() }
        let empty = UnsafeBufferPointer<Float>(start: nil, count: 0)
        XCTAssertThrowsError(try adapter.forward(layer: 0, modules: [.attentionSelfQuery, .attentionSelfValue], x: empty, rows: 2,
                                                 outputs: [y, y]))
        XCTAssertThrowsError(try adapter.backward(layer: 0, modules: [.attentionSelfQuery, .attentionSelfValue], x: empty,
                                                  dys: [UnsafeBufferPointer(y), UnsafeBufferPointer(y)], rows: 2, dx: y))
        let tensor = MetaTTBertAdapter(threads: 1)
        XCTAssertThrowsError(try tensor.forward(layer: 0, modules: [.query, .key], x: empty, rows: 2, outputs: [y, y]))
        XCTAssertThrowsError(try tensor.forward(layer: 12, module: .query, x: [Float](repeating: 0, count: 768), rows: 1))
    }
}

/// Generated/ is what `adaptc compile` makes of Specs/ today, byte for byte.
final class GeneratedDriftTests: XCTestCase {
    func testGeneratedFilesMatchSpecs() throws {
        let specs = try FileManager.default.contentsOfDirectory(atPath: repositoryRoot.appendingPathComponent("Specs").path)
            .filter { $0.hasSuffix(".adapt.yaml") }.sorted()
        XCTAssertFalse(specs.isEmpty)
        for spec in specs {
            let (name, source) = try CompileCommand.source(specPath: specPath(spec))
            let checkedIn = try String(contentsOf: repositoryRoot.appendingPathComponent("Generated/\(name)"), encoding: .utf8)
            XCTAssertTrue(checkedIn == source, "Generated/\(name) differs from a fresh compile of Specs/\(spec): run Tools/regenerate\n"
                          + firstDifference(checkedIn: checkedIn, fresh: source))
            // Regenerating is deterministic.
            XCTAssertEqual(try CompileCommand.source(specPath: specPath(spec)).source, source)
        }
    }
}

/// Where two texts part, as a diff would show it: the first differing line of
/// each with its number, so a drift failure says what changed.
func firstDifference(checkedIn: String, fresh: String) -> String {
    let old = checkedIn.split(separator: "\n", omittingEmptySubsequences: false)
    let new = fresh.split(separator: "\n", omittingEmptySubsequences: false)
    for i in 0..<max(old.count, new.count) {
        let a = i < old.count ? String(old[i]) : "<end of file>"
        let b = i < new.count ? String(new[i]) : "<end of file>"
        if a != b { return "line \(i + 1):\n- \(a.prefix(300))\n+ \(b.prefix(300))" }
    }
    return "the texts are equal"
}
