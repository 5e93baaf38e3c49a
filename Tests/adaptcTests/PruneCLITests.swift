import AdaptRuntime
import AdaptcCore
import Foundation
import AdaptTestSupport
import XCTest

/// `adaptc prune` end to end: the pruned spec passes check and compile, its
/// weights evaluate through `adaptc eval`, the energy it reports is what eval
/// measures, kept layers are bit-identical, and bad input is one line, nothing written.
final class PruneCLITests: XCTestCase {
    private var sandbox: CLISandbox!

    override func setUpWithError() throws { sandbox = try CLISandbox() }
    override func tearDown() { sandbox?.remove() }

    static let spec = """
        # Written by PruneCLITests: a comment the pruned spec must keep.
        adaptc: 1
        name: PruneMe
        model:
          layers: 4
          modules:
            up: [24, 16]
            down: [16, 24]
        adapters:
          - name: mlp   # the group the pruner works on
            structure: lora
            modules: [up, down]
            rank: 6
            alpha: 12
            overrides:
              "1.down": {alpha: 8}
        prune: {threshold: 0.9}
        """

    static let shapes = ["up": (24, 16), "down": (16, 24)]
    static let pairs = (0..<4).flatMap { l in ["up", "down"].map { Pair(layer: l, module: $0) } }

    /// Random A and B, layers 0 and 2 a hundred times weaker (LoRA-drop drops them),
    /// calibration and held-out rows; returns the adapter's tensors.
    @discardableResult
    func writeInputs(spec: String = PruneCLITests.spec) throws -> [String: [Float]] {
        let path = try sandbox.write(spec, to: "prune-me.adapt.yaml")
        let checked = try SpecLoader.load(path: path)
        var random = TestRandom(seed: 41)
        var writer = SafetensorsWriter(metadata: AdapterFiles.metadata(checked))
        var tensors: [String: [Float]] = [:]
        for pair in Self.pairs {
            let (out, inFeatures) = Self.shapes[pair.module]!
            let weak: Float = [0, 2].contains(pair.layer) ? 0.01 : 1
            let a = random.floats(6 * inFeatures, bound: 0.5)
            let b = (0..<out * 6).map { i in random.uniform(0.5) * weak / Float(1 + i % 6) }
            tensors["mlp.\(pair.key).A"] = a
            tensors["mlp.\(pair.key).B"] = b
            writer.add("mlp.\(pair.key).A", floats: a, shape: [6, inFeatures])
            writer.add("mlp.\(pair.key).B", floats: b, shape: [out, 6])
        }
        try writer.write(to: sandbox.path("adapter.safetensors"))
        for (name, seed) in [("calib", UInt64(42)), ("heldout", UInt64(43))] {
            var rows = SafetensorsWriter(), r = TestRandom(seed: seed)
            for pair in Self.pairs {
                let inFeatures = Self.shapes[pair.module]!.1
                rows.add(pair.key, floats: r.floats(40 * inFeatures), shape: [40, inFeatures])
            }
            try rows.write(to: sandbox.path("\(name).safetensors"))
        }
        return tensors
    }

    /// Σ‖y − y'‖² / Σ‖y‖² over every pair of two eval outputs.
    func relativeErrorEnergy(_ original: String, _ pruned: String) throws -> Double {
        let a = try SafetensorsFile.read(path: sandbox.path(original)), b = try SafetensorsFile.read(path: sandbox.path(pruned))
        var total = 0.0, error = 0.0
        for entry in a.tensors {
            let y = try a.floats(entry.name), y2 = try b.floats(entry.name)
            for (u, v) in zip(y, y2) { total += Double(u) * Double(u); error += (Double(u) - Double(v)) * (Double(u) - Double(v)) }
        }
        return error / total
    }

    func eval(_ spec: String, _ adapter: String, _ input: String, _ output: String) throws {
        let result = try sandbox.adaptc("eval", spec, "--adapter", adapter, "--input", input, "-o", output)
        XCTAssertEqual(result.status, 0, "\(result)")
    }

    func testPrunedSpecAndWeightsRoundTripThroughCheckCompileAndEval() throws {
        try writeInputs()
        let run = try sandbox.adaptc("prune", "prune-me.adapt.yaml", "--adapter", "adapter.safetensors",
                                     "--calib", "calib.safetensors", "-o", "pruned")
        XCTAssertEqual(run.status, 0, "\(run)")
        XCTAssertTrue(run.stdoutLines.contains { $0.hasPrefix("total") }, "\(run)")
        for name in ["prune-me.adapt.yaml", "prune-me.safetensors", "report.json", "report.svg"] {
            XCTAssertTrue(sandbox.exists("pruned/\(name)"), name)
        }
        let text = try String(contentsOfFile: sandbox.path("pruned/prune-me.adapt.yaml"), encoding: .utf8)
        XCTAssertTrue(text.contains("# Written by PruneCLITests: a comment the pruned spec must keep."), text)
        XCTAssertTrue(text.contains("- name: mlp   # the group the pruner works on"), text)
        XCTAssertTrue(text.contains("layers: [1, 3]"), text)
        XCTAssertTrue(text.contains("- name: mlp_shared"), text)
        XCTAssertTrue(text.contains("shared: true"), text)

        let check = try sandbox.adaptc("check", "pruned/prune-me.adapt.yaml")
        XCTAssertEqual(check.status, 0, "\(check)")
        let compile = try sandbox.adaptc("compile", "pruned/prune-me.adapt.yaml", "-o", "gen")
        XCTAssertEqual(compile.status, 0, "\(compile)")
        XCTAssertTrue(sandbox.exists("gen/PruneMeAdapter.swift"))

        // The reported energy kept is what eval measures on the calibration rows.
        try eval("prune-me.adapt.yaml", "adapter.safetensors", "calib.safetensors", "y.safetensors")
        try eval("pruned/prune-me.adapt.yaml", "pruned/prune-me.safetensors", "calib.safetensors", "y-pruned.safetensors")
        let lost = try relativeErrorEnergy("y.safetensors", "y-pruned.safetensors")
        let report = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: sandbox.path("pruned/report.json")))) as! [String: Any]
        XCTAssertEqual(1 - lost, report["energy_kept"] as! Double, accuracy: 1e-4)
        XCTAssertLessThan(report["parameters_after"] as! Int, report["parameters_before"] as! Int)

        // Held-out rows: the pruned adapter's error against the original.
        try eval("prune-me.adapt.yaml", "adapter.safetensors", "heldout.safetensors", "h.safetensors")
        try eval("pruned/prune-me.adapt.yaml", "pruned/prune-me.safetensors", "heldout.safetensors", "h-pruned.safetensors")
        let heldOut = try relativeErrorEnergy("h.safetensors", "h-pruned.safetensors")
        print("prune round trip: calibration energy lost \(lost), held-out \(heldOut)")
        XCTAssertLessThan(heldOut, 0.25)
    }

    /// A group that trains only B (`train: [out]`, LoRA-FA's frozen A) hands
    /// its dropped layers to a shared group that trains only B too.
    func testSharedGroupKeepsTheSourcesFrozenFactors() throws {
        try writeInputs(spec: Self.spec.replacingOccurrences(of: "    rank: 6\n", with: "    rank: 6\n    train: [out]\n"))
        let run = try sandbox.adaptc("prune", "prune-me.adapt.yaml", "--adapter", "adapter.safetensors",
                                     "--calib", "calib.safetensors", "-o", "pruned")
        XCTAssertEqual(run.status, 0, "\(run)")
        let (_, plan) = try SpecLoader.loadPlanned(path: sandbox.path("pruned/prune-me.adapt.yaml"))
        let shared = plan.parameters.filter { $0.key.hasPrefix("mlp_shared.") }
        XCTAssertFalse(shared.isEmpty)
        for tensor in plan.parameters {
            XCTAssertEqual(tensor.trainable, tensor.key.hasSuffix(".B"), "\(tensor.key): only the B's learn")
        }
    }

    /// Rank level alone: the calibration energy eval loses is ≤ 1 − T, and the
    /// pairs that kept all their components are bit-identical.
    func testRankLevelLosesAtMostOneMinusThresholdThroughEval() throws {
        try writeInputs()
        for threshold in ["0.8", "0.95"] {
            let run = try sandbox.adaptc("prune", "prune-me.adapt.yaml", "--adapter", "adapter.safetensors", "--calib", "calib.safetensors",
                                         "--levels", "rank", "--threshold", threshold, "-o", "r\(threshold)")
            XCTAssertEqual(run.status, 0, "\(run)")
            try eval("prune-me.adapt.yaml", "adapter.safetensors", "calib.safetensors", "y.safetensors")
            try eval("r\(threshold)/prune-me.adapt.yaml", "r\(threshold)/prune-me.safetensors", "calib.safetensors", "y-r.safetensors")
            let lost = try relativeErrorEnergy("y.safetensors", "y-r.safetensors")
            XCTAssertLessThanOrEqual(lost, 1 - Double(threshold)! + 1e-5, "T \(threshold)")
            XCTAssertGreaterThan(lost, 0, "T \(threshold): something must have been pruned")
        }
    }

    /// Layer level alone: kept layers' A and B are the input's bytes.
    func testLayerLevelKeepsKeptLayersBitIdentical() throws {
        let tensors = try writeInputs()
        let run = try sandbox.adaptc("prune", "prune-me.adapt.yaml", "--adapter", "adapter.safetensors",
                                     "--calib", "calib.safetensors", "--levels", "layer", "-o", "l")
        XCTAssertEqual(run.status, 0, "\(run)")
        let pruned = try SafetensorsFile.read(path: sandbox.path("l/prune-me.safetensors"))
        for layer in [1, 3] {
            for module in ["up", "down"] {
                for factor in ["A", "B"] {
                    let key = "mlp.\(layer).\(module).\(factor)"
                    XCTAssertEqual(try pruned.floats(key).map(\.bitPattern), tensors[key]!.map(\.bitPattern), key)
                }
            }
        }
        XCTAssertNil(pruned.entry("mlp.0.up.A"))
        XCTAssertNotNil(pruned.entry("mlp_shared.shared.up.A"))
        let check = try sandbox.adaptc("check", "l/prune-me.adapt.yaml")
        XCTAssertEqual(check.status, 0, "\(check)")
    }

    /// rsLoRA, alpha overrides, a `shared: true` group, global scope: every
    /// group keeps ≥ T of its calibration energy as eval measures it, and the
    /// report says exactly that figure.
    func testSharedGroupAndGlobalScopeKeepTheirShareThroughEval() throws {
        let spec = try sandbox.write(EvalMaterializeCLITests.mixedSpec, to: "mixed.adapt.yaml")
        let checked = try SpecLoader.load(path: spec)
        _ = try writeRandomAdapter(EvalMaterializeCLITests.mixedPairs, checked: checked, to: sandbox.path("a.safetensors"), seed: 45)
        var rows = SafetensorsWriter(), random = TestRandom(seed: 46)
        for pair in EvalMaterializeCLITests.mixedPairs { rows.add(pair.key, floats: random.floats(30 * pair.inFeatures), shape: [30, pair.inFeatures]) }
        try rows.write(to: sandbox.path("calib.safetensors"))
        for scope in ["pair", "global"] {
            let run = try sandbox.adaptc("prune", "mixed.adapt.yaml", "--adapter", "a.safetensors", "--calib", "calib.safetensors",
                                         "--levels", "rank", "--scope", scope, "--threshold", "0.7", "-o", scope)
            XCTAssertEqual(run.status, 0, "\(run)")
            let check = try sandbox.adaptc("check", "\(scope)/mixed.adapt.yaml")
            XCTAssertEqual(check.status, 0, "\(check)")
            try eval("mixed.adapt.yaml", "a.safetensors", "calib.safetensors", "y.safetensors")
            try eval("\(scope)/mixed.adapt.yaml", "\(scope)/mixed.safetensors", "calib.safetensors", "y-\(scope).safetensors")
            let report = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: sandbox.path("\(scope)/report.json")))) as! [String: Any]
            let groups = report["groups"] as! [[String: Any]]
            let a = try SafetensorsFile.read(path: sandbox.path("y.safetensors")), b = try SafetensorsFile.read(path: sandbox.path("y-\(scope).safetensors"))
            for (name, layers) in [("main", 0...2), ("tail", 3...5)] {
                var total = 0.0, error = 0.0
                for entry in a.tensors where layers.contains(Int(entry.name.split(separator: ".")[0])!) {
                    for (u, v) in zip(try a.floats(entry.name), try b.floats(entry.name)) {
                        total += Double(u) * Double(u); error += (Double(u) - Double(v)) * (Double(u) - Double(v))
                    }
                }
                let reported = groups.first { $0["name"] as? String == name }!["energy_kept"] as! Double
                XCTAssertEqual(1 - error / total, reported, accuracy: 1e-4, "\(scope) \(name)")
                XCTAssertGreaterThanOrEqual(1 - error / total, 0.7 - 1e-5, "\(scope) \(name)")
            }
            XCTAssertTrue(groups.contains { $0["shared_rank_after"] != nil }, "the shared group's rank should drop at T = 0.7\n\(run)")
        }
    }

    // MARK: bad input: one line, exit 1, nothing written

    private func expectError(_ extra: [String], calib: String = "calib.safetensors", output: String = "pruned", mentions: String,
                             file: StaticString = #filePath, line: UInt = #line) throws {
        let before = sandbox.listing()
        let result = try sandbox.adaptc(["prune", "prune-me.adapt.yaml", "--adapter", "adapter.safetensors", "--calib", calib, "-o", output] + extra,
                                        file: file, line: line)
        XCTAssertEqual(result.status, 1, "\(result)", file: file, line: line)
        XCTAssertEqual(result.stderrLines.count, 1, "\(result)", file: file, line: line)
        XCTAssertTrue(result.stderr.hasPrefix("adaptc: error: "), "\(result)", file: file, line: line)
        XCTAssertTrue(result.stderr.contains(mentions), "expected '\(mentions)'\n\(result)", file: file, line: line)
        XCTAssertEqual(sandbox.listing(), before, "nothing may be written\n\(result)", file: file, line: line)
    }

    func testBadInputIsOneLineAndWritesNothing() throws {
        try writeInputs()
        var random = TestRandom(seed: 44)
        func calib(_ name: String, _ edit: (Pair, inout [Float], inout [Int]) -> Bool) throws {
            var writer = SafetensorsWriter()
            for pair in Self.pairs {
                var shape = [5, Self.shapes[pair.module]!.1]
                var x = random.floats(shape[0] * shape[1])
                if edit(pair, &x, &shape) { writer.add(pair.key, floats: x, shape: shape) }
            }
            try writer.write(to: sandbox.path(name))
        }
        try calib("missing.safetensors") { pair, _, _ in pair.key != "2.down" }
        try calib("wide.safetensors") { pair, x, shape in
            if pair.key == "1.up" { shape[1] += 1; x += [Float](repeating: 0, count: shape[0]) }
            return true
        }
        try calib("nan.safetensors") { pair, x, _ in
            if pair.key == "3.down" { x[7] = .nan }
            return true
        }
        var duplicate = SafetensorsWriter()
        for pair in Self.pairs { duplicate.add(pair.key, floats: random.floats(5 * Self.shapes[pair.module]!.1), shape: [5, Self.shapes[pair.module]!.1]) }
        duplicate.add("01.up", floats: random.floats(5 * 16), shape: [5, 16])
        try duplicate.write(to: sandbox.path("duplicate.safetensors"))
        try expectError([], calib: "missing.safetensors", mentions: "2.down")
        try expectError([], calib: "duplicate.safetensors", mentions: "second tensor for pair 1.up")
        try expectError([], calib: "wide.safetensors", mentions: "1.up")
        try expectError([], calib: "nan.safetensors", mentions: "NaN")
        try expectError(["--threshold", "0"], mentions: "threshold")
        try expectError(["--threshold", "1.5"], mentions: "threshold")
        try expectError(["--threshold", "nan"], mentions: "threshold")
        try expectError(["--levels", "layer,bogus"], mentions: "bogus")
        try expectError(["--scope", "everywhere"], mentions: "everywhere")
        try sandbox.write("not a folder", to: "taken")
        try expectError([], output: "taken", mentions: "not a folder")
        // -o next to the inputs would replace the user's spec.
        try expectError([], output: ".", mentions: "would overwrite an input")
        // Adapters in flow style: the line editor cannot follow them, and says so.
        let flow = """
            adaptc: 1
            name: PruneMe
            model:
              layers: 4
              modules: {up: [24, 16], down: [16, 24]}
            adapters: [{name: mlp, structure: lora, modules: [up, down], rank: 6, alpha: 12, overrides: {"1.down": {alpha: 8}}}]
            """
        try sandbox.write(flow, to: "flow.adapt.yaml")
        let before = sandbox.listing()
        let result = try sandbox.adaptc("prune", "flow.adapt.yaml", "--adapter", "adapter.safetensors", "--calib", "calib.safetensors", "-o", "f")
        XCTAssertEqual(result.status, 1, "\(result)")
        XCTAssertEqual(result.stderrLines.count, 1, "\(result)")
        XCTAssertTrue(result.stderr.contains("block list"), "\(result)")
        XCTAssertEqual(sandbox.listing(), before)
    }
}
