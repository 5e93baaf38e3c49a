import AdaptRuntime
import AdaptTestSupport
import Foundation
import XCTest

/// DoRA through the executable against PEFT's own use_dora=True files
/// (Tests/Fixtures/peft/dora_qv, Tools/PEFT/make_dora_fixture.py): import then
/// export gives PEFT's tensors back, import then eval --base gives PEFT's
/// outputs, merge --base gives PEFT's merge_and_unload; init sets m = ‖W‖_row;
/// what needs the base and lacks it is one line with nothing written.
final class DoRACLITests: XCTestCase {
    var sandbox: CLISandbox!

    override func setUpWithError() throws { sandbox = try CLISandbox() }
    override func tearDown() { sandbox.remove() }

    private func fixture(_ name: String) -> String { PEFTFixtures.file(name, in: "dora_qv") }
    private let pairs = (0..<2).flatMap { l in ["query", "value"].map { "encoder.layer.\(l).attention.self.\($0)" } }

    /// Largest |a − b| over the largest |b|.
    private func relative(_ a: [Float], _ b: [Float]) -> Double {
        XCTAssertEqual(a.count, b.count)
        var num = 0.0, den = 0.0
        for (u, v) in zip(a, b) { num = max(num, abs(Double(u) - Double(v))); den = max(den, abs(Double(v))) }
        return num / den
    }

    /// The fixture's adapter folder copied into the sandbox and imported to `out/dora.*`.
    private func imported() throws {
        try FileManager.default.createDirectory(atPath: sandbox.path("dora"), withIntermediateDirectories: true)
        for name in ["adapter_config.json", "adapter_model.safetensors"] {
            try FileManager.default.copyItem(atPath: fixture(name), toPath: sandbox.path("dora/\(name)"))
        }
        let run = try sandbox.adaptc("import-peft", "dora", "-o", "out")
        XCTAssertEqual(run.status, 0, "\(run)")
    }

    func testImportWritesDoRASpecAndExportRoundTrips() throws {
        try imported()
        let spec = try String(contentsOfFile: sandbox.path("out/dora.adapt.yaml"), encoding: .utf8)
        XCTAssertTrue(spec.contains("dora: true"), spec)
        let adapter = try SafetensorsFile.read(path: sandbox.path("out/dora.safetensors"))
        XCTAssertEqual(adapter.entry("lora.0.attention.self.query.magnitude")?.shape, [8])
        let export = try sandbox.adaptc("export-peft", "out/dora.adapt.yaml", "--adapter", "out/dora.safetensors", "-o", "back")
        XCTAssertEqual(export.status, 0, "\(export)")
        let original = try SafetensorsFile.read(path: fixture("adapter_model.safetensors"))
        let back = try SafetensorsFile.read(path: sandbox.path("back/adapter_model.safetensors"))
        XCTAssertEqual(back.tensors.map(\.name).sorted(), original.tensors.map(\.name).sorted())
        for entry in original.tensors {
            XCTAssertEqual(back.entry(entry.name)?.shape, entry.shape, entry.name)
            XCTAssertEqual(try back.floats(entry.name), try original.floats(entry.name), entry.name)
        }
        let config = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: sandbox.path("back/adapter_config.json")))) as! [String: Any]
        XCTAssertEqual(config["use_dora"] as? Bool, true)
        XCTAssertEqual(config["r"] as? Int, 2)
        XCTAssertEqual((config["lora_alpha"] as? NSNumber)?.doubleValue, 4)
    }

    func testEvalMaterializeAndMergeEqualPEFT() throws {
        try imported()
        try inputsKeyedByPair()
        let eval = try sandbox.adaptc("eval", "out/dora.adapt.yaml", "--adapter", "out/dora.safetensors",
                                      "--input", "x.safetensors", "--base", fixture("base.safetensors"), "-o", "y.safetensors")
        XCTAssertEqual(eval.status, 0, "\(eval)")
        let y = try SafetensorsFile.read(path: sandbox.path("y.safetensors"))
        let delta = try SafetensorsFile.read(path: fixture("delta.safetensors"))
        let base = try SafetensorsFile.read(path: fixture("base.safetensors"))
        let merged = try SafetensorsFile.read(path: fixture("merged.safetensors"))
        for (l, p) in pairs.enumerated() {
            let key = "\(l / 2).attention.self.\(l % 2 == 0 ? "query" : "value")"
            XCTAssertLessThan(relative(try y.floats(key), try delta.floats(p)), 1e-5, p)
        }
        let materialize = try sandbox.adaptc("materialize", "out/dora.adapt.yaml", "--adapter", "out/dora.safetensors",
                                             "--base", fixture("base.safetensors"), "-o", "dw.safetensors")
        XCTAssertEqual(materialize.status, 0, "\(materialize)")
        let dw = try SafetensorsFile.read(path: sandbox.path("dw.safetensors"))
        let merge = try sandbox.adaptc("merge", "out/dora.adapt.yaml", "--adapter", "out/dora.safetensors",
                                       "--base", fixture("base.safetensors"), "-o", "merged.safetensors")
        XCTAssertEqual(merge.status, 0, "\(merge)")
        let ours = try SafetensorsFile.read(path: sandbox.path("merged.safetensors"))
        for (l, p) in pairs.enumerated() {
            let key = "\(l / 2).attention.self.\(l % 2 == 0 ? "query" : "value")"
            let expected = try merged.floats(p + ".weight")
            XCTAssertLessThan(relative(try ours.floats(p + ".weight"), expected), 1e-5, p)
            XCTAssertEqual(try ours.floats(p + ".bias"), try base.floats(p + ".bias"), p)
            let w = try base.floats(p + ".weight")
            XCTAssertLessThan(relative(zip(try dw.floats(key), w).map { $0 + $1 }, expected), 1e-5, p)
        }
    }

    /// fixture inputs are keyed by module path; eval wants LAYER.MODULE.
    private func inputsKeyedByPair() throws {
        let inputs = try SafetensorsFile.read(path: fixture("inputs.safetensors"))
        var writer = SafetensorsWriter()
        for p in pairs {
            let key = String(p.dropFirst("encoder.layer.".count))
            writer.add(key, floats: try inputs.floats(p), shape: inputs.entry(p)!.shape)
        }
        try writer.write(to: sandbox.path("x.safetensors"))
    }

    func testInitSetsMagnitudeToRowNorms() throws {
        try imported()
        let run = try sandbox.adaptc("init", "out/dora.adapt.yaml", "--base", fixture("base.safetensors"), "-o", "fresh.safetensors")
        XCTAssertEqual(run.status, 0, "\(run)")
        let fresh = try SafetensorsFile.read(path: sandbox.path("fresh.safetensors"))
        let base = try SafetensorsFile.read(path: fixture("base.safetensors"))
        for (l, p) in pairs.enumerated() {
            let key = "lora.\(l / 2).attention.self.\(l % 2 == 0 ? "query" : "value")"
            let w = try base.floats(p + ".weight")
            let norms = (0..<8).map { o in Float((0..<8).reduce(0.0) { $0 + Double(w[o * 8 + $1]) * Double(w[o * 8 + $1]) }.squareRoot()) }
            XCTAssertLessThan(relative(try fresh.floats(key + ".magnitude"), norms), 1e-6, p)
            XCTAssertTrue(try fresh.floats(key + ".B").allSatisfy { $0 == 0 }, p)
        }
    }

    func testWhatNeedsTheBaseFailsWithOneLine() throws {
        try imported()
        // A base whose layer-1 query weight has a zero row.
        let base = try SafetensorsFile.read(path: fixture("base.safetensors"))
        var writer = SafetensorsWriter()
        for entry in base.tensors {
            var values = try base.floats(entry.name)
            if entry.name == "encoder.layer.1.attention.self.query.weight" { for i in 16..<24 { values[i] = 0 } }
            writer.add(entry.name, floats: values, shape: entry.shape)
        }
        try writer.write(to: sandbox.path("zero.safetensors"))
        try inputsKeyedByPair()
        let spec = "out/dora.adapt.yaml", adapter = "out/dora.safetensors"
        let cases: [([String], String)] = [
            (["eval", spec, "--adapter", adapter, "--input", "x.safetensors", "-o", "y.safetensors"], "group 'lora' is DoRA"),
            (["materialize", spec, "--adapter", adapter, "-o", "y.safetensors"], "materialize needs --base"),
            (["merge", spec, "--adapter", adapter, "--base", fixture("base.safetensors"), "-o", "y.safetensors", "--unmerge"],
             "merge --unmerge cannot recover W"),
            (["init", spec, "-o", "y.safetensors"], "needs --base"),
            (["init", spec, "--base", "zero.safetensors", "-o", "y.safetensors"], "row 2 has norm zero"),
            (["export-gguf", spec, "--adapter", adapter, "--arch", "llama", "--heads", "2", "-o", "y.gguf"], "is DoRA"),
        ]
        let before = sandbox.listing()
        for (arguments, needle) in cases {
            let run = try sandbox.adaptc(arguments)
            XCTAssertEqual(run.status, 1, "\(arguments): \(run)")
            XCTAssertEqual(run.stderrLines.count, 1, "\(arguments): \(run)")
            XCTAssertTrue(run.stderr.contains(needle), "\(arguments): \(run)")
            XCTAssertEqual(sandbox.listing(), before, "\(arguments): \(run)")
        }
    }

    /// compile generates DoRA groups: the type has prepare(base:) (DESIGN §6; GeneratedTests run it).
    func testCompileGeneratesPrepareBase() throws {
        try imported()
        let run = try sandbox.adaptc("compile", "out/dora.adapt.yaml", "-o", "gen")
        XCTAssertEqual(run.status, 0, "\(run)")
        let files = try FileManager.default.contentsOfDirectory(atPath: sandbox.path("gen"))
        XCTAssertEqual(files.count, 1, "\(files)")
        let source = try String(contentsOfFile: sandbox.path("gen/\(files[0])"), encoding: .utf8)
        XCTAssertTrue(source.contains("func prepare(base: [String: UnsafePointer<Float>]) throws"), source)
        XCTAssertTrue(source.contains("func prepare(base: SafetensorsFile, weightKey: String = "), source)
    }

    func testDoRAOnOtherGroupsIsALocatedError() throws {
        let text = """
        adaptc: 1
        name: Bad
        model:
          layers: 2
          modules: {q: [8, 8], v: [8, 8]}
        adapters:
          - name: tt
            structure: tensor-train
            modules: [q]
            rank: 2
            dora: true
          - name: sh
            structure: lora
            modules: [v]
            rank: 2
            shared: true
            dora: true
        """
        _ = try sandbox.write(text, to: "bad.adapt.yaml")
        let run = try sandbox.adaptc("check", "bad.adapt.yaml")
        XCTAssertEqual(run.status, 1, "\(run)")
        XCTAssertEqual(run.stderrLines.count, 2, "\(run)")
        XCTAssertTrue(run.stderrLines[0].hasPrefix("bad.adapt.yaml:11:5: error: 'dora' applies only to lora groups"), "\(run)")
        XCTAssertTrue(run.stderrLines[1].hasPrefix("bad.adapt.yaml:17:5: error: 'dora' and 'shared'"), "\(run)")
    }

    /// Rank level keeps each pair's m and the pruned files run (eval --base); layer level is refused with one line.
    func testPruneRankLevelKeepsMagnitudeAndLayerLevelRefuses() throws {
        try imported()
        try inputsKeyedByPair()
        let refused = try sandbox.adaptc("prune", "out/dora.adapt.yaml", "--adapter", "out/dora.safetensors",
                                         "--calib", "x.safetensors", "-o", "layer")
        XCTAssertEqual(refused.status, 1, "\(refused)")
        XCTAssertEqual(refused.stderrLines.count, 1, "\(refused)")
        XCTAssertTrue(refused.stderr.contains("prune it with --levels rank"), "\(refused)")
        XCTAssertFalse(sandbox.exists("layer"))
        let run = try sandbox.adaptc("prune", "out/dora.adapt.yaml", "--adapter", "out/dora.safetensors",
                                     "--calib", "x.safetensors", "--levels", "rank", "--threshold", "0.5", "-o", "pruned")
        XCTAssertEqual(run.status, 0, "\(run)")
        let spec = try String(contentsOfFile: sandbox.path("pruned/dora.adapt.yaml"), encoding: .utf8)
        XCTAssertTrue(spec.contains("dora: true"), spec)
        let before = try SafetensorsFile.read(path: sandbox.path("out/dora.safetensors"))
        let after = try SafetensorsFile.read(path: sandbox.path("pruned/dora.safetensors"))
        for entry in before.tensors where entry.name.hasSuffix(".magnitude") {
            XCTAssertEqual(try after.floats(entry.name), try before.floats(entry.name), entry.name)
        }
        let eval = try sandbox.adaptc("eval", "pruned/dora.adapt.yaml", "--adapter", "pruned/dora.safetensors",
                                      "--input", "x.safetensors", "--base", fixture("base.safetensors"), "-o", "y.safetensors")
        XCTAssertEqual(eval.status, 0, "\(eval)")
    }

    /// A DoRA group beside a plain one: eval without --base runs the plain pairs and refuses only a DoRA input.
    func testMixedSpecNeedsTheBaseOnlyForDoRAPairs() throws {
        let text = """
        adaptc: 1
        name: Mixed
        model:
          layers: 1
          modules: {q: [4, 3], v: [4, 3]}
          weights: {key: "m.{layer}.{module}.weight"}
        adapters:
          - name: plain
            structure: lora
            modules: [q]
            rank: 2
          - name: dora
            structure: lora
            modules: [v]
            rank: 2
            alpha: 4
            dora: true
        """
        _ = try sandbox.write(text, to: "mixed.adapt.yaml")
        var base = SafetensorsWriter()
        var rng = TestRandom(seed: 7)
        for module in ["q", "v"] { base.add("m.0.\(module).weight", floats: rng.floats(12), shape: [4, 3]) }
        try base.write(to: sandbox.path("base.safetensors"))
        XCTAssertEqual(try sandbox.adaptc("init", "mixed.adapt.yaml", "--base", "base.safetensors", "-o", "a.safetensors").status, 0)
        var inputs = SafetensorsWriter()
        inputs.add("0.q", floats: rng.floats(6), shape: [2, 3])
        try inputs.write(to: sandbox.path("xq.safetensors"))
        inputs.add("0.v", floats: rng.floats(6), shape: [2, 3])
        try inputs.write(to: sandbox.path("xqv.safetensors"))
        let plain = try sandbox.adaptc("eval", "mixed.adapt.yaml", "--adapter", "a.safetensors", "--input", "xq.safetensors", "-o", "y.safetensors")
        XCTAssertEqual(plain.status, 0, "\(plain)")
        let refused = try sandbox.adaptc("eval", "mixed.adapt.yaml", "--adapter", "a.safetensors", "--input", "xqv.safetensors", "-o", "y2.safetensors")
        XCTAssertEqual(refused.status, 1, "\(refused)")
        XCTAssertTrue(refused.stderr.contains("group 'dora' is DoRA") && refused.stderrLines.count == 1, "\(refused)")
        XCTAssertFalse(sandbox.exists("y2.safetensors"))
        // Fresh DoRA (B = 0, m = ‖W‖_row): W' = W, so its own output is zero.
        let run = try sandbox.adaptc("eval", "mixed.adapt.yaml", "--adapter", "a.safetensors", "--input", "xqv.safetensors",
                                     "--base", "base.safetensors", "-o", "y3.safetensors")
        XCTAssertEqual(run.status, 0, "\(run)")
        let y = try SafetensorsFile.read(path: sandbox.path("y3.safetensors"))
        XCTAssertLessThan(try y.floats("0.v").map { abs($0) }.max()!, 1e-6)
        let export = try sandbox.adaptc("export-peft", "mixed.adapt.yaml", "--adapter", "a.safetensors", "-o", "peft")
        XCTAssertEqual(export.status, 1, "\(export)")
        XCTAssertTrue(export.stderr.contains("PEFT's use_dora covers a whole adapter"), "\(export)")
    }
}
