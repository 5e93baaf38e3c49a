import XCTest
import Foundation
@testable import AdaptcCore
import AdaptRuntime
import AdaptTestSupport

/// import-peft and export-peft on every PEFT fixture (Tests/Fixtures/peft):
/// the imported adapter reproduces PEFT's float64 deltas and merged weights,
/// its scales are PEFT's own (meta.json), and exporting it gives back PEFT's
/// tensors key for key with a config PEFT reads the same way.
final class PEFTInteropTests: XCTestCase {
    var folder: URL!

    override func setUpWithError() throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("interop-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        if let folder { try? FileManager.default.removeItem(at: folder) }
    }

    func testLoraQv() throws { try roundTrip("lora_qv") }
    func testRsLoRAPatterns() throws { try roundTrip("rslora_patterns") }
    func testPissa() throws { try roundTrip("pissa") }

    /// Every nn.Linear of the fixtures' BertModel: what a config may or may not target.
    static let candidateModules: [String] = (0..<4).flatMap { layer in
        ["attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
         "intermediate.dense", "output.dense"].map { "encoder.layer.\(layer).\($0)" }
    } + ["pooler.dense"]

    private func roundTrip(_ name: String, base: Bool = false) throws {
        let fixture = PEFTFixtures.root.appendingPathComponent(name).path
        let out = folder.appendingPathComponent("imported").path
        for withBase in [false, true] {
            _ = try ImportPEFTCommand.run(folder: fixture, output: out, stem: nil,
                                          basePath: withBase ? PEFTFixtures.file("base.safetensors", in: name) : nil)
        }
        let specPath = out + "/\(name).adapt.yaml", adapterPath = out + "/\(name).safetensors"
        let (_, plan) = try SpecLoader.loadPlanned(path: specPath)

        // Ranks and scales: PEFT's own, as meta.json recorded them from the live modules.
        let meta = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: fixture + "/meta.json"))) as! [String: Any]
        let modules = meta["modules"] as! [String: [String: Any]]
        XCTAssertEqual(plan.pairs.count, modules.count)
        for pair in plan.pairs {
            let recorded = try XCTUnwrap(modules["encoder.layer.\(pair.key)"], pair.key)
            XCTAssertEqual(pair.rank, recorded["r"] as? Int, pair.key)
            XCTAssertEqual(pair.scale, try XCTUnwrap(recorded["scaling"] as? Double), accuracy: 1e-12, pair.key)
        }

        // eval against delta.safetensors (PEFT in float64).
        let inputs = try SafetensorsFile.read(path: PEFTFixtures.file("inputs.safetensors", in: name))
        var x = SafetensorsWriter()
        for entry in inputs.tensors {
            x.add(String(entry.name.dropFirst("encoder.layer.".count)), floats: try inputs.floats(entry.name), shape: entry.shape)
        }
        let xPath = folder.appendingPathComponent("x.safetensors").path, yPath = folder.appendingPathComponent("y.safetensors").path
        try x.write(to: xPath)
        _ = try EvalCommand.eval(specPath: specPath, adapterPath: adapterPath, inputPath: xPath, output: yPath, threads: 2)
        let y = try SafetensorsFile.read(path: yPath)
        let deltas = try SafetensorsFile.read(path: PEFTFixtures.file("delta.safetensors", in: name))
        XCTAssertEqual(y.tensors.count, deltas.tensors.count)
        for entry in deltas.tensors {
            assertClose(try y.floats(String(entry.name.dropFirst("encoder.layer.".count))), try deltas.floats(entry.name).map(Double.init),
                        "\(name) eval \(entry.name)", tolerance: 1e-5)
        }

        // merge against merged.safetensors; PiSSA's adapter sits on the residual, not the base.
        let mergedPath = folder.appendingPathComponent("merged.safetensors").path
        let basePath = PEFTFixtures.file(name == "pissa" ? "residual.safetensors" : "base.safetensors", in: name)
        _ = try MergeCommand.run(specPath: specPath, adapterPath: adapterPath, basePath: basePath, output: mergedPath,
                                 unmerge: false, threads: 2)
        let merged = try SafetensorsFile.read(path: mergedPath)
        let expected = try SafetensorsFile.read(path: PEFTFixtures.file("merged.safetensors", in: name))
        XCTAssertEqual(merged.tensors.map(\.name), expected.tensors.map(\.name))
        for entry in expected.tensors {
            assertClose(try merged.floats(entry.name), try expected.floats(entry.name).map(Double.init), "\(name) merge \(entry.name)", tolerance: 1e-6)
        }

        // export of the import: PEFT's tensors key for key, and an equivalent config.
        let exported = folder.appendingPathComponent("exported").path
        _ = try ExportPEFTCommand.run(specPath: specPath, adapterPath: adapterPath, output: exported)
        let original = try SafetensorsFile.read(path: fixture + "/adapter_model.safetensors")
        let written = try SafetensorsFile.read(path: exported + "/adapter_model.safetensors")
        XCTAssertEqual(written.tensors.map(\.name), original.tensors.map(\.name))
        XCTAssertEqual(written.metadata, original.metadata)
        for entry in original.tensors {
            XCTAssertEqual(written.entry(entry.name)?.shape, entry.shape, entry.name)
            XCTAssertEqual(try written.floats(entry.name), try original.floats(entry.name), entry.name)
        }
        let before = try PEFTConfig.read(fixture + "/adapter_config.json"), after = try PEFTConfig.read(exported + "/adapter_config.json")
        XCTAssertEqual(after.r, before.r)
        XCTAssertEqual(after.loraAlpha, before.loraAlpha)
        XCTAssertEqual(after.useRSLoRA, before.useRSLoRA)
        for module in Self.candidateModules {
            XCTAssertEqual(after.isTargeted(module), before.isTargeted(module), "\(name): \(module)")
            guard before.isTargeted(module) else { continue }
            XCTAssertEqual(after.rank(of: module), before.rank(of: module), "\(name): \(module)")
            XCTAssertEqual(after.scale(of: module), before.scale(of: module), accuracy: 1e-12, "\(name): \(module)")
        }
    }

    /// PEFT's pattern rule: `re.match(r"(.*\.)?(KEY)$", module)`, first key in JSON order wins.
    func testPatternRules() {
        var config = PEFTConfig(r: 8, loraAlpha: 16, targets: .names(["query", "attention.output.dense"]))
        config.rankPattern = [("layer.1.attention.self.query", 2), ("query", 4)]
        XCTAssertEqual(config.rank(of: "encoder.layer.1.attention.self.query"), 2)
        XCTAssertEqual(config.rank(of: "encoder.layer.2.attention.self.query"), 4)
        XCTAssertEqual(config.rank(of: "encoder.layer.1.attention.self.key"), 8)
        // "query" must be a whole trailing component: "subquery" is not matched.
        XCTAssertEqual(config.rank(of: "encoder.layer.1.attention.self.subquery"), 8)
        XCTAssertTrue(config.isTargeted("encoder.layer.3.attention.output.dense"))
        XCTAssertFalse(config.isTargeted("encoder.layer.3.output.dense"))
        XCTAssertFalse(config.isTargeted("encoder.layer.3.attention.self.subquery"))
        config.targets = .regex(#".*\.(query|value)"#)
        XCTAssertTrue(config.isTargeted("encoder.layer.0.attention.self.value"))
        XCTAssertFalse(config.isTargeted("encoder.layer.0.attention.self.value.extra"))
    }

    func testModulePathsSplitAtTheLayerIndex() {
        XCTAssertEqual(PEFTModulePath("encoder.layer.3.attention.self.query"), PEFTModulePath(prefix: "encoder.layer", layer: 3, module: "attention.self.query"))
        XCTAssertEqual(PEFTModulePath("model.layers.12.mlp.down_proj"), PEFTModulePath(prefix: "model.layers", layer: 12, module: "mlp.down_proj"))
        XCTAssertEqual(PEFTModulePath("transformer.h.0.attn.c_attn"), PEFTModulePath(prefix: "transformer.h", layer: 0, module: "attn.c_attn"))
        XCTAssertNil(PEFTModulePath("pooler.dense"))
        XCTAssertNil(PEFTModulePath("encoder.layer.x.query"))
        XCTAssertEqual(PEFTImport.specName("lora_qv"), "LoraQv")
        XCTAssertEqual(PEFTImport.specName("7b-adapter"), "Peft7bAdapter")
    }
}
