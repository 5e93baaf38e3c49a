import AdaptRuntime
import AdaptTestSupport
import Foundation
import XCTest

/// import-peft / export-peft through the executable: hostile or unsupported
/// PEFT folders are one line naming the file and the feature or tensor, and
/// nothing is written.
final class PEFTInteropCLITests: XCTestCase {
    var sandbox: CLISandbox!

    override func setUpWithError() throws { sandbox = try CLISandbox() }
    override func tearDown() { sandbox.remove() }

    /// A copy of the lora_qv fixture folder at `name`, its config edited by `edit`.
    func peftFolder(_ name: String, config edit: (inout [String: Any]) -> Void = { _ in },
                    tensors: ((inout [(String, [Float], [Int])]) -> Void)? = nil) throws {
        var config = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: PEFTFixtures.file("adapter_config.json", in: "lora_qv")))) as! [String: Any]
        edit(&config)
        try sandbox.write(String(decoding: try JSONSerialization.data(withJSONObject: config, options: [.sortedKeys]), as: UTF8.self),
                          to: "\(name)/adapter_config.json")
        let original = try SafetensorsFile.read(path: PEFTFixtures.file("adapter_model.safetensors", in: "lora_qv"))
        var entries = try original.tensors.map { ($0.name, try original.floats($0.name), $0.shape) }
        tensors?(&entries)
        var writer = SafetensorsWriter(metadata: ["format": "pt"])
        for (key, values, shape) in entries { writer.add(key, floats: values, shape: shape) }
        try writer.write(to: sandbox.path("\(name)/adapter_model.safetensors"))
    }

    func testImportWritesSpecAndAdapter() throws {
        try peftFolder("my-adapter")
        let run = try sandbox.adaptc("import-peft", "my-adapter", "-o", "out")
        XCTAssertEqual(run.status, 0, "\(run)")
        XCTAssertTrue(sandbox.exists("out/my-adapter.adapt.yaml") && sandbox.exists("out/my-adapter.safetensors"))
        let text = try String(contentsOfFile: sandbox.path("out/my-adapter.adapt.yaml"), encoding: .utf8)
        XCTAssertTrue(text.contains("name: MyAdapter"), text)
        let named = try sandbox.adaptc("import-peft", "my-adapter", "-o", "out", "--name", "qv")
        XCTAssertEqual(named.status, 0, "\(named)")
        XCTAssertTrue(sandbox.exists("out/qv.adapt.yaml"))
        let check = try sandbox.adaptc("check", "out/qv.adapt.yaml")
        XCTAssertEqual(check.status, 0, "\(check)")
    }

    func testHostileFoldersFailWithOneLineAndWriteNothing() throws {
        let layer0A = "base_model.model.encoder.layer.0.attention.self.query.lora_A.weight"
        let cases: [(String, String, (inout [String: Any]) -> Void, ((inout [(String, [Float], [Int])]) -> Void)?)] = [
            ("dora", "lora_magnitude_vector\" is missing (the config sets use_dora)", { $0["use_dora"] = true }, nil),
            ("lorabias", "lora_bias", { $0["lora_bias"] = true }, nil),
            ("bias", "bias \"all\"", { $0["bias"] = "all" }, nil),
            ("ia3", "peft_type \"IA3\"", { $0["peft_type"] = "IA3" }, nil),
            ("saved", "modules_to_save", { $0["modules_to_save"] = ["classifier"] }, nil),
            ("rank", "rank 4, but tensor", { $0["r"] = 4 }, nil),
            ("targets", "does not cover", { $0["target_modules"] = ["key", "value"] }, nil),
            ("layers", "layers_to_transform", { $0["layers_to_transform"] = [0, 1] }, nil),
            ("alphazero", "\"lora_alpha\" must be a positive number", { $0["lora_alpha"] = 0 }, nil),
            ("alphapattern", "alpha_pattern \"query\" must map to a positive finite number, not -2", { $0["alpha_pattern"] = ["query": -2] }, nil),
            ("layerfraction", "layers_to_transform must be an integer or a list of them, not 1.5", { $0["layers_to_transform"] = 1.5 }, nil),
            ("missing", "lora_B.weight\" is missing", { _ in }, { $0.removeAll { $0.0 == layer0A.replacingOccurrences(of: "lora_A", with: "lora_B") } }),
            ("nan", "contains NaN", { _ in }, { $0[0].1[3] = .nan }),
            ("shape", "has rank 8", { _ in }, { entries in
                let i = entries.firstIndex { $0.0 == layer0A.replacingOccurrences(of: "lora_A", with: "lora_B") }!
                entries[i] = (entries[i].0, Array(entries[i].1.prefix(64 * 4)), [64, 4])
            }),
            ("magnitude", "DoRA (lora_magnitude_vector), but the config's use_dora is not true", { _ in }, { $0.append(("base_model.model.encoder.layer.0.attention.self.query.lora_magnitude_vector", [Float](repeating: 1, count: 64), [64])) }),
            ("nolayer", "no layer index", { $0["target_modules"] = ["query", "value", "dense"] }, { $0.append(("base_model.model.pooler.dense.lora_A.weight", [Float](repeating: 0, count: 8 * 64), [8, 64])); $0.append(("base_model.model.pooler.dense.lora_B.weight", [Float](repeating: 0, count: 64 * 8), [64, 8])) }),
        ]
        for (name, _, edit, tensors) in cases { try peftFolder(name, config: edit, tensors: tensors) }
        let before = sandbox.listing()
        for (name, needle, _, _) in cases + [("absent", "not a folder", { _ in }, nil)] {
            let run = try sandbox.adaptc("import-peft", name, "-o", "out")
            XCTAssertEqual(run.status, 1, "\(name): \(run)")
            XCTAssertEqual(run.stderrLines.count, 1, "\(name): \(run)")
            XCTAssertTrue(run.stderr.hasPrefix("adaptc: error: ") && run.stderr.contains(needle), "\(name): \(run)")
            XCTAssertEqual(sandbox.listing(), before, "\(name): \(run)")
        }
    }

    func testExportRefusesForeignAdapters() throws {
        try peftFolder("qv")
        XCTAssertEqual(try sandbox.adaptc("import-peft", "qv", "-o", "out").status, 0)
        try sandbox.copySpec("tiny-qv.adapt.yaml")
        XCTAssertEqual(try sandbox.adaptc("init", "tiny-qv.adapt.yaml", "-o", "tiny.safetensors").status, 0)
        let before = sandbox.listing()
        let foreign = try sandbox.adaptc("export-peft", "out/qv.adapt.yaml", "--adapter", "tiny.safetensors", "-o", "exp")
        XCTAssertEqual(foreign.status, 1, "\(foreign)")
        XCTAssertTrue(foreign.stderr.contains("different spec"), "\(foreign)")
        XCTAssertEqual(sandbox.listing(), before)
    }
}
