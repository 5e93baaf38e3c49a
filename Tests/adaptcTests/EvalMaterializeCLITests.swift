import AdaptRuntime
import AdaptcCore
import Foundation
import AdaptTestSupport
import XCTest

/// `adaptc eval` / `adaptc materialize` on random LoRA weights, against a float64
/// reference ΔW = s·B·A computed here from the written A/B and DESIGN §2's scale rule.
final class EvalMaterializeCLITests: XCTestCase {
    private var sandbox: CLISandbox!

    override func setUpWithError() throws { sandbox = try CLISandbox() }
    override func tearDown() { sandbox?.remove() }

    static let tolerance = 1e-5

    /// rsLoRA, per-pair rank/alpha overrides, modules of two shapes, and a
    /// second, shared group without alpha.
    static let mixedSpec = """
        # Written by EvalMaterializeCLITests.
        adaptc: 1
        name: MixedRs
        model:
          layers: 6
          modules:
            up: [48, 32]
            down: [32, 48]
          weights: {key: "blocks.{layer}.{module}.weight"}
        adapters:
          - name: main
            structure: lora
            layers: [0, 1, 2]
            modules: [up, down]
            rank: 6
            alpha: 12
            scaling: rslora
            overrides:
              "1.up": {rank: 3}
              "2.down": {rank: 5, alpha: 7}
              "0.down": {alpha: 20}
          - name: tail
            structure: lora
            layers: "3...5"
            modules: [up, down]
            shared: true
            rank: 4
        """

    /// The pairs of `mixedSpec`, ranks and scales worked out by hand from DESIGN §2.
    static var mixedPairs: [ReferencePair] {
        let shapes = ["up": (48, 32), "down": (32, 48)]
        var pairs: [ReferencePair] = []
        for layer in 0...2 {
            for module in ["up", "down"] {
                var rank = 6, alpha = 12.0
                switch (layer, module) {
                case (1, "up"): rank = 3
                case (2, "down"): rank = 5; alpha = 7
                case (0, "down"): alpha = 20
                default: break
                }
                let (out, inFeatures) = shapes[module]!
                pairs.append(ReferencePair(
                    layer: layer, module: module, outFeatures: out, inFeatures: inFeatures, rank: rank,
                    scale: ReferencePair.scale(alpha: alpha, rank: rank, rslora: true),
                    aKey: "main.\(layer).\(module).A", bKey: "main.\(layer).\(module).B"))
            }
        }
        for layer in 3...5 {
            for module in ["up", "down"] {
                let (out, inFeatures) = shapes[module]!
                pairs.append(ReferencePair(
                    layer: layer, module: module, outFeatures: out, inFeatures: inFeatures, rank: 4,
                    scale: ReferencePair.scale(alpha: nil, rank: 4, rslora: false),
                    aKey: "tail.shared.\(module).A", bKey: "tail.shared.\(module).B"))
            }
        }
        return pairs
    }

    func testScalesWorkedOutByHand() {
        // Guards the reference itself: 12/√6, 12/√3, 7/√5, 20/√6 and 1.
        let byKey = Dictionary(uniqueKeysWithValues: Self.mixedPairs.map { ($0.key, $0.scale) })
        XCTAssertEqual(byKey["0.up"]!, 4.898979485566356, accuracy: 1e-12)
        XCTAssertEqual(byKey["1.up"]!, 6.928203230275509, accuracy: 1e-12)
        XCTAssertEqual(byKey["2.down"]!, 3.1304951684997055, accuracy: 1e-12)
        XCTAssertEqual(byKey["0.down"]!, 8.16496580927726, accuracy: 1e-12)
        XCTAssertEqual(byKey["4.up"]!, 1)
        XCTAssertEqual(Dictionary(uniqueKeysWithValues: TinyQv.pairs.map { ($0.key, $0.scale) })["3.attention.self.value"], 4)
    }

    // MARK: tiny-qv (standard scaling, one override)

    func testTinyQvMaterialize() throws {
        try checkMaterialize(spec: Repository.spec("tiny-qv.adapt.yaml"), pairs: TinyQv.pairs, seed: 11)
    }

    func testTinyQvEval() throws {
        try checkEval(spec: Repository.spec("tiny-qv.adapt.yaml"), pairs: TinyQv.pairs, seed: 12)
    }

    // MARK: rslora, overrides, mixed shapes, shared group without alpha

    func testMixedMaterialize() throws {
        let spec = try sandbox.write(Self.mixedSpec, to: "mixed.adapt.yaml")
        try checkMaterialize(spec: spec, pairs: Self.mixedPairs, seed: 21)
    }

    func testMixedEval() throws {
        let spec = try sandbox.write(Self.mixedSpec, to: "mixed.adapt.yaml")
        try checkEval(spec: spec, pairs: Self.mixedPairs, seed: 22)
    }

    /// eval of a subset of pairs writes exactly those keys; BF16/F16 inputs are widened.
    func testEvalSubsetAndHalfPrecisionInputs() throws {
        let spec = try sandbox.write(Self.mixedSpec, to: "mixed.adapt.yaml")
        let checked = try SpecLoader.load(path: spec)
        let pairs = Self.mixedPairs
        let tensors = try writeRandomAdapter(pairs, checked: checked, to: sandbox.path("a.safetensors"), seed: 23)
        var random = TestRandom(seed: 24)
        let chosen = [pairs[1], pairs[7]]  // 0.down, 3.down (shared)
        var writer = SafetensorsWriter()
        var inputs: [String: [Float]] = [:]
        for (index, pair) in chosen.enumerated() {
            let rows = 5
            // Values exactly representable in both formats: multiples of 1/64 in [-1, 1].
            let x = (0..<rows * pair.inFeatures).map { _ in Float(Int(random.next() % 129) - 64) / 64 }
            inputs[pair.key] = x
            let dtype: DType = index == 0 ? .bf16 : .f16
            writer.add(pair.key, dtype: dtype, shape: [rows, pair.inFeatures], bytes: FloatNarrowing.bytes(x, as: dtype))
        }
        try writer.write(to: sandbox.path("x.safetensors"))
        let result = try sandbox.adaptc("eval", spec, "--adapter", "a.safetensors", "--input", "x.safetensors",
                                        "-o", "y.safetensors")
        XCTAssertEqual(result.status, 0, "\(result)")
        let output = try SafetensorsFile.read(path: sandbox.path("y.safetensors"))
        XCTAssertEqual(output.tensors.map(\.name).sorted(), chosen.map(\.key).sorted())
        for pair in chosen {
            let delta = referenceDelta(pair, tensors: tensors)
            let want = referenceApply(delta, out: pair.outFeatures, in: pair.inFeatures, x: inputs[pair.key]!, rows: 5)
            let got = try output.floats(pair.key)
            XCTAssertLessThanOrEqual(maxRelativeError(got, want), Self.tolerance, pair.key)
        }
    }

    /// `--threads 1` and the default give the same numbers.
    func testEvalThreadsAgree() throws {
        let spec = Repository.spec("tiny-qv.adapt.yaml")
        let checked = try SpecLoader.load(path: spec)
        _ = try writeRandomAdapter(TinyQv.pairs, checked: checked, to: sandbox.path("a.safetensors"), seed: 31)
        _ = try writeInputs(TinyQv.pairs, to: "x.safetensors", seed: 32)
        let one = try sandbox.adaptc("eval", spec, "--adapter", "a.safetensors", "--input", "x.safetensors",
                                     "-o", "y1.safetensors", "--threads", "1")
        let all = try sandbox.adaptc("eval", spec, "--adapter", "a.safetensors", "--input", "x.safetensors",
                                     "-o", "y2.safetensors")
        XCTAssertEqual(one.status, 0, "\(one)")
        XCTAssertEqual(all.status, 0, "\(all)")
        let y1 = try SafetensorsFile.read(path: sandbox.path("y1.safetensors"))
        let y2 = try SafetensorsFile.read(path: sandbox.path("y2.safetensors"))
        for entry in y1.tensors {
            let a = try y1.floats(entry.name), b = try y2.floats(entry.name)
            XCTAssertLessThanOrEqual(maxRelativeError(b, a), 1e-6, entry.name)
        }
    }

    func testThreadsNegativeIsBadUsage() throws {
        let result = try sandbox.adaptc("materialize", Repository.spec("tiny-qv.adapt.yaml"), "--adapter", "a",
                                        "-o", "d.safetensors", "--threads", "-1")
        XCTAssertEqual(result.status, 64, "\(result)")
    }

    // MARK: helpers

    private func checkMaterialize(spec: String, pairs: [ReferencePair], seed: UInt64,
                                  file: StaticString = #filePath, line: UInt = #line) throws {
        let checked = try SpecLoader.load(path: spec)
        try assertLayoutMatches(pairs, spec: spec, file: file, line: line)
        let tensors = try writeRandomAdapter(pairs, checked: checked, to: sandbox.path("adapter.safetensors"), seed: seed)
        let result = try sandbox.adaptc("materialize", spec, "--adapter", "adapter.safetensors", "-o", "delta.safetensors")
        XCTAssertEqual(result.status, 0, "\(result)", file: file, line: line)
        XCTAssertTrue(result.stdout.contains("delta.safetensors"), "\(result)", file: file, line: line)
        let output = try SafetensorsFile.read(path: sandbox.path("delta.safetensors"))
        XCTAssertEqual(output.tensors.map(\.name).sorted(), pairs.map(\.key).sorted(), file: file, line: line)
        for pair in pairs {
            let entry = try XCTUnwrap(output.entry(pair.key), pair.key, file: file, line: line)
            XCTAssertEqual(entry.shape, [pair.outFeatures, pair.inFeatures], pair.key, file: file, line: line)
            XCTAssertEqual(entry.dtype, .f32, file: file, line: line)
            let error = maxRelativeError(try output.floats(pair.key), referenceDelta(pair, tensors: tensors))
            XCTAssertLessThanOrEqual(error, Self.tolerance, "ΔW of \(pair.key)", file: file, line: line)
        }
    }

    private func checkEval(spec: String, pairs: [ReferencePair], seed: UInt64,
                           file: StaticString = #filePath, line: UInt = #line) throws {
        let checked = try SpecLoader.load(path: spec)
        let tensors = try writeRandomAdapter(pairs, checked: checked, to: sandbox.path("adapter.safetensors"), seed: seed)
        let inputs = try writeInputs(pairs, to: "x.safetensors", seed: seed &+ 1000)
        let result = try sandbox.adaptc("eval", spec, "--adapter", "adapter.safetensors", "--input", "x.safetensors",
                                        "-o", "y.safetensors")
        XCTAssertEqual(result.status, 0, "\(result)", file: file, line: line)
        let output = try SafetensorsFile.read(path: sandbox.path("y.safetensors"))
        XCTAssertEqual(output.tensors.map(\.name).sorted(), pairs.map(\.key).sorted(), file: file, line: line)
        for pair in pairs {
            let (x, rows) = inputs[pair.key]!
            let entry = try XCTUnwrap(output.entry(pair.key), pair.key, file: file, line: line)
            XCTAssertEqual(entry.shape, [rows, pair.outFeatures], pair.key, file: file, line: line)
            let want = referenceApply(referenceDelta(pair, tensors: tensors), out: pair.outFeatures,
                                      in: pair.inFeatures, x: x, rows: rows)
            let error = maxRelativeError(try output.floats(pair.key), want)
            XCTAssertLessThanOrEqual(error, Self.tolerance, "y of \(pair.key) (n = \(rows))", file: file, line: line)
        }
    }

    /// Inputs for every pair, n cycling through 1, 3, 64.
    private func writeInputs(_ pairs: [ReferencePair], to name: String, seed: UInt64) throws -> [String: ([Float], Int)] {
        var random = TestRandom(seed: seed)
        var writer = SafetensorsWriter()
        var inputs: [String: ([Float], Int)] = [:]
        for (index, pair) in pairs.enumerated() {
            let rows = [1, 3, 64][index % 3]
            let x = random.floats(rows * pair.inFeatures)
            inputs[pair.key] = (x, rows)
            writer.add(pair.key, floats: x, shape: [rows, pair.inFeatures])
        }
        try writer.write(to: sandbox.path(name))
        return inputs
    }

    /// The planner expects exactly the tensors the reference writes (keys and shapes).
    private func assertLayoutMatches(_ pairs: [ReferencePair], spec: String,
                                     file: StaticString = #filePath, line: UInt = #line) throws {
        let (_, plan) = try SpecLoader.loadPlanned(path: spec)
        var expected: [String: [Int]] = [:]
        for pair in pairs {
            expected[pair.aKey] = [pair.rank, pair.inFeatures]
            expected[pair.bKey] = [pair.outFeatures, pair.rank]
        }
        let planned = Dictionary(uniqueKeysWithValues: plan.parameters.map { ($0.key, $0.shape) })
        XCTAssertEqual(planned, expected, "adapter layout", file: file, line: line)
        XCTAssertEqual(plan.pairs.map(\.key).sorted(), pairs.map(\.key).sorted(), file: file, line: line)
    }
}
