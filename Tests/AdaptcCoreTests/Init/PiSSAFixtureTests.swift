import XCTest
import Foundation
@testable import AdaptcCore
import AdaptRuntime
import AdaptTestSupport

/// `adaptc init` with pissa on the base PEFT started from (Tests/Fixtures/peft/pissa):
/// s·B·A and the residual must equal PEFT's own. Signs of singular vectors are
/// arbitrary, so products are compared, never factors.
final class PiSSAFixtureTests: XCTestCase {
    var folder: URL!

    override func setUpWithError() throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("pissa-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        if let folder { try? FileManager.default.removeItem(at: folder) }
    }

    func spec(svd: String) -> String {
        """
        adaptc: 1
        name: PeftPissa
        model:
          layers: 4
          modules: {attention.self.query: [64, 64], attention.self.value: [64, 64], intermediate.dense: [128, 64]}
          weights: {key: "encoder.layer.{layer}.{module}.weight"}
        adapters:
          - name: principal
            structure: lora
            modules: [attention.self.query, attention.self.value, intermediate.dense]
            rank: 8
            alpha: 8
            init: {method: pissa, svd: \(svd)}
        """
    }

    func testPissaMatchesPEFT() throws {
        // Exact only: these random weights have a flat spectrum (σ₁…σ₈ from 0.79
        // to 0.64), where a randomized SVD is near-optimal in error but does not
        // reproduce the same subspace (TruncatedSVDTests checks its error).
        for svd in ["exact"] {
            let specPath = folder.appendingPathComponent("pissa.adapt.yaml").path
            try spec(svd: svd).write(toFile: specPath, atomically: true, encoding: .utf8)
            let adapter = folder.appendingPathComponent("a.safetensors").path
            let residual = folder.appendingPathComponent("res.safetensors").path
            let lines = try InitCommand.run(specPath: specPath, output: adapter, seed: 3,
                                            basePath: PEFTFixtures.file("base.safetensors", in: "pissa"),
                                            residualPath: residual, threads: 2)
            XCTAssertTrue(lines[0].contains("captured energy") && lines[0].contains("relative error"), lines[0])

            // PEFT's ΔW = scaling·B@A from its own adapter file, in float64 (scaling 1 here).
            let peft = try SafetensorsFile.read(path: PEFTFixtures.file("adapter_model.safetensors", in: "pissa"))
            let delta = folder.appendingPathComponent("d.safetensors").path
            _ = try EvalCommand.materialize(specPath: specPath, adapterPath: adapter, output: delta, threads: 2)
            let ours = try SafetensorsFile.read(path: delta)
            XCTAssertEqual(ours.tensors.count, 12)
            for entry in ours.tensors {
                let module = "base_model.model.encoder.layer.\(entry.name)"
                let a = try peft.floats(module + ".lora_A.weight"), b = try peft.floats(module + ".lora_B.weight")
                let (out, inFeatures) = (entry.shape[0], entry.shape[1])
                var expected = [Double](repeating: 0, count: out * inFeatures)
                for i in 0..<out { for k in 0..<8 { for j in 0..<inFeatures {
                    expected[i * inFeatures + j] += Double(b[i * 8 + k]) * Double(a[k * inFeatures + j])
                } } }
                assertClose(try ours.floats(entry.name), expected, "\(svd) s·B·A \(entry.name)", tolerance: 1e-4)
            }

            // The residual file: PEFT's W_res for the weights, biases byte for byte.
            let written = try SafetensorsFile.read(path: residual)
            let reference = try SafetensorsFile.read(path: PEFTFixtures.file("residual.safetensors", in: "pissa"))
            XCTAssertEqual(written.tensors.map(\.name), reference.tensors.map(\.name))
            for entry in reference.tensors {
                if entry.name.hasSuffix(".bias") {
                    XCTAssertEqual(try written.rawBytes(entry.name), try reference.rawBytes(entry.name), entry.name)
                } else {
                    assertClose(try written.floats(entry.name), try reference.floats(entry.name).map(Double.init),
                                "\(svd) residual \(entry.name)", tolerance: 1e-4)
                }
            }
        }
    }
}
