import XCTest
import Foundation
@testable import AdaptcCore
import AdaptRuntime
import AdaptTestSupport

/// Ground truth from PEFT itself (Tests/Fixtures/peft): an adaptc spec
/// written by hand for each case, PEFT's lora_A/lora_B renamed into the adaptc
/// layout, then `eval` must reproduce PEFT's float64 deltas and `merge` its
/// merged weights. (Automatic import is `adaptc import-peft`, a later issue.)
final class PEFTFixtureTests: XCTestCase {
    static let fixtures = PEFTFixtures.root

    var folder: URL!

    override func setUpWithError() throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("peft-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        if let folder { try? FileManager.default.removeItem(at: folder) }
    }

    func testLoraQv() throws {
        try check(case: "lora_qv", spec: """
            adaptc: 1
            name: PeftQv
            model:
              layers: 4
              modules: {attention.self.query: [64, 64], attention.self.value: [64, 64]}
              weights: {key: "encoder.layer.{layer}.{module}.weight"}
            adapters:
              - name: attn
                structure: lora
                modules: [attention.self.query, attention.self.value]
                rank: 8
                alpha: 16
            """)
    }

    /// rank_pattern / alpha_pattern become overrides; use_rslora is `scaling: rslora`.
    func testRsLoRAWithPatterns() throws {
        try check(case: "rslora_patterns", spec: """
            adaptc: 1
            name: PeftPatterns
            model:
              layers: 4
              modules:
                attention.self.query: [64, 64]
                attention.self.key: [64, 64]
                attention.self.value: [64, 64]
                attention.output.dense: [64, 64]
              weights: {key: "encoder.layer.{layer}.{module}.weight"}
            adapters:
              - name: attn
                structure: lora
                modules: [attention.self.query, attention.self.key, attention.self.value, attention.output.dense]
                rank: 8
                alpha: 16
                scaling: rslora
                overrides:
                  "1.attention.self.query": {rank: 2}
                  "3.attention.self.value": {rank: 4}
                  "2.attention.self.key": {alpha: 32}
            """)
    }

    private func check(case name: String, spec text: String) throws {
        let dir = Self.fixtures.appendingPathComponent(name)
        let specPath = folder.appendingPathComponent("\(name).adapt.yaml").path
        try text.write(toFile: specPath, atomically: true, encoding: .utf8)
        let (checked, plan) = try SpecLoader.loadPlanned(path: specPath)

        // PEFT layout → adaptc layout, by hand.
        let peft = try SafetensorsFile.read(path: dir.appendingPathComponent("adapter_model.safetensors").path)
        var adapter = SafetensorsWriter(metadata: AdapterFiles.metadata(checked))
        for entry in peft.tensors {
            // base_model.model.encoder.layer.L.MODULE.lora_A.weight
            let path = entry.name.replacingOccurrences(of: "base_model.model.encoder.layer.", with: "")
            let factor = path.hasSuffix(".lora_A.weight") ? "A" : "B"
            let pair = path.replacingOccurrences(of: ".lora_A.weight", with: "").replacingOccurrences(of: ".lora_B.weight", with: "")
            adapter.add("attn.\(pair).\(factor)", floats: try peft.floats(entry.name), shape: entry.shape)
        }
        let adapterPath = folder.appendingPathComponent("adapter.safetensors").path
        try adapter.write(to: adapterPath)

        // eval against delta.safetensors (PEFT in float64).
        let inputs = try SafetensorsFile.read(path: dir.appendingPathComponent("inputs.safetensors").path)
        let deltas = try SafetensorsFile.read(path: dir.appendingPathComponent("delta.safetensors").path)
        var x = SafetensorsWriter()
        for entry in inputs.tensors {
            x.add(entry.name.replacingOccurrences(of: "encoder.layer.", with: ""), floats: try inputs.floats(entry.name), shape: entry.shape)
        }
        let inputPath = folder.appendingPathComponent("x.safetensors").path, outputPath = folder.appendingPathComponent("y.safetensors").path
        try x.write(to: inputPath)
        _ = try EvalCommand.eval(specPath: specPath, adapterPath: adapterPath, inputPath: inputPath, output: outputPath, threads: 2)
        let y = try SafetensorsFile.read(path: outputPath)
        XCTAssertEqual(y.tensors.count, plan.pairs.count)
        for entry in deltas.tensors {
            let got = try y.floats(entry.name.replacingOccurrences(of: "encoder.layer.", with: ""))
            assertClose(got, try deltas.floats(entry.name).map(Double.init), "\(name) eval \(entry.name)", tolerance: 1e-5)
        }

        // merge against merged.safetensors; the base's biases are carried through unchanged.
        let mergedPath = folder.appendingPathComponent("merged.safetensors").path
        _ = try MergeCommand.run(specPath: specPath, adapterPath: adapterPath,
                                 basePath: dir.appendingPathComponent("base.safetensors").path,
                                 output: mergedPath, unmerge: false, threads: 2)
        let merged = try SafetensorsFile.read(path: mergedPath)
        let expected = try SafetensorsFile.read(path: dir.appendingPathComponent("merged.safetensors").path)
        XCTAssertEqual(merged.tensors.map(\.name), expected.tensors.map(\.name))
        for entry in expected.tensors {
            assertClose(try merged.floats(entry.name), try expected.floats(entry.name).map(Double.init),
                        "\(name) merge \(entry.name)", tolerance: 1e-6)
        }
    }
}
