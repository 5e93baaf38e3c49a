import XCTest
import Foundation
@testable import AdaptcCore
import AdaptRuntime
import AdaptTestSupport

/// export-gguf read back with the test-only `GGUFReader`: on each PEFT fixture
/// (imported, then exported as BERT) every tensor is PEFT's own lora_A/lora_B
/// under llama.cpp's name and shape, B times the scale ratio where llama.cpp's
/// alpha/r differs from PEFT's scale; on a native two-group LLaMA spec the
/// product llama.cpp forms, (alpha/r)·B·A with B's q/k rows put back in HF
/// order, is adaptc's ΔW, in float64 over the definition.
final class GGUFExportTests: XCTestCase {
    var folder: URL!

    override func setUpWithError() throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("gguf-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        if let folder { try? FileManager.default.removeItem(at: folder) }
    }

    /// llama.cpp's names for the fixtures' BertModel modules (gguf-py's TensorNameMap).
    static let bertNames = ["attention.self.query": "attn_q", "attention.self.key": "attn_k", "attention.self.value": "attn_v",
                            "attention.output.dense": "attn_output", "intermediate.dense": "ffn_up", "output.dense": "ffn_down"]

    func testLoraQv() throws { try checkFixture("lora_qv", alpha: 16, folded: 0) }
    func testRsLoRAPatterns() throws { try checkFixture("rslora_patterns", alpha: 16, folded: 16) }
    func testPissa() throws { try checkFixture("pissa", alpha: 8, folded: 0) }

    private func checkFixture(_ name: String, alpha: Float, folded: Int) throws {
        let fixture = PEFTFixtures.root.appendingPathComponent(name).path
        let out = folder.appendingPathComponent(name).path
        _ = try ImportPEFTCommand.run(folder: fixture, output: out, stem: nil, basePath: nil)
        let peft = try SafetensorsFile.read(path: PEFTFixtures.file("adapter_model.safetensors", in: name))
        let meta = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: fixture + "/meta.json"))) as! [String: Any]
        let modules = meta["modules"] as! [String: [String: Any]]
        for type in GGUFExport.TensorType.allCases {
            let path = folder.appendingPathComponent("\(name)-\(type.rawValue).gguf").path
            let lines = try ExportGGUFCommand.run(specPath: "\(out)/\(name).adapt.yaml", adapterPath: "\(out)/\(name).safetensors",
                                                  architecture: "bert", heads: nil, dtype: type.rawValue, output: path)
            XCTAssertEqual(lines.count, 1)
            let file = try GGUFReader(path: path)
            XCTAssertEqual(file.alignment, 32)
            XCTAssertEqual(file.dataOffset % 32, 0)
            XCTAssertEqual(file.metadata.map(\.key), ["general.architecture", "general.alignment", "general.type", "general.name",
                                                     "adapter.type", "adapter.lora.alpha", "general.quantization_version"])
            XCTAssertEqual(file.value("general.alignment"), .unsigned(32, type: 4))
            XCTAssertEqual(file.value("general.architecture"), .string("bert"))
            XCTAssertEqual(file.value("general.type"), .string("adapter"))
            XCTAssertEqual(file.value("adapter.type"), .string("lora"))
            XCTAssertEqual(file.value("adapter.lora.alpha"), .float(Double(alpha), type: 6))
            XCTAssertEqual(file.value("general.quantization_version"), .unsigned(2, type: 4))
            XCTAssertEqual(file.tensors.count, 2 * modules.count)

            var foldedPairs = 0
            for (key, recorded) in modules {
                // "encoder.layer.0.attention.self.query": the layer, then the module below it.
                let module = String(key.dropFirst("encoder.layer.".count))
                let dot = module.firstIndex(of: ".")!
                let layer = String(module[..<dot]), path = String(module[module.index(after: dot)...])
                let base = "blk.\(layer).\(try XCTUnwrap(Self.bertNames[path])).weight"
                let r = recorded["r"] as! Int, scaling = recorded["scaling"] as! Double
                let a = try XCTUnwrap(file.tensor(base + ".lora_a"), base), b = try XCTUnwrap(file.tensor(base + ".lora_b"), base)
                let peftA = try peft.floats("base_model.model.encoder.layer.\(module).lora_A.weight")
                let peftB = try peft.floats("base_model.model.encoder.layer.\(module).lora_B.weight")
                let (outFeatures, inFeatures) = (peftB.count / r, peftA.count / r)
                XCTAssertEqual(a.ne, [inFeatures, r], base)
                XCTAssertEqual(b.ne, [r, outFeatures], base)
                XCTAssertEqual(a.type, type == .f32 ? 0 : 1, base)
                XCTAssertEqual(b.type, a.type, base)
                // llama.cpp scales by alpha / r; what it lacks goes into B.
                let ratio = scaling / (Double(alpha) / Double(r))
                if abs(ratio - 1) > 1e-7 { foldedPairs += 1 }
                let wantB = peftB.map { Float(Double($0) * ratio) }
                assertStored(a.floats, peftA, type: type, base + ".lora_a")
                assertStored(b.floats, wantB, type: type, base + ".lora_b")
            }
            XCTAssertEqual(foldedPairs, folded)
        }
    }

    /// F32 bit for bit; F16 as the nearest half (round to nearest even), up to the fold's last-bit rounding.
    private func assertStored(_ got: [Float], _ want: [Float], type: GGUFExport.TensorType, _ name: String,
                              file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(got.count, want.count, name, file: file, line: line)
        for (g, w) in zip(got, want) {
            let expected = type == .f32 ? w : Float(Float16(w))
            let tolerance = type == .f32 ? 2 * w.ulp : 2 * Float(Float16(w)).ulp
            if abs(g - expected) > tolerance {
                XCTFail("\(name): \(g) != \(expected)", file: file, line: line)
                return
            }
        }
    }

    static let tinyLlama = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fixtures/gguf/tiny-llama.adapt.yaml").path

    /// An adapter for `spec` whose B factors are not zero (init leaves them zero), `bound` their magnitude.
    func randomAdapter(_ spec: String, bound: Float = 0.5) throws -> String {
        let path = folder.appendingPathComponent("adapter.safetensors").path
        _ = try InitCommand.run(specPath: spec, output: path, seed: 3, basePath: nil, residualPath: nil, threads: 1)
        let initial = try SafetensorsFile.read(path: path)
        var random = TestRandom(seed: 11)
        var writer = SafetensorsWriter(metadata: initial.metadata)
        for entry in initial.tensors {
            let values = entry.name.hasSuffix(".B") ? random.floats(entry.elementCount, bound: bound)
                                                     : try initial.floats(entry.name)
            writer.add(entry.name, floats: values, shape: entry.shape)
        }
        try writer.write(to: path)
        return path
    }

    func testValuesBeyondF16AreRefusedAndNothingIsWritten() throws {
        let adapter = try randomAdapter(Self.tinyLlama, bound: 200_000)
        let path = folder.appendingPathComponent("big.gguf").path
        XCTAssertThrowsError(try ExportGGUFCommand.run(specPath: Self.tinyLlama, adapterPath: adapter, architecture: "llama",
                                                       heads: "4:2", dtype: "f16", output: path)) { error in
            XCTAssertTrue("\(error)".contains("does not fit in F16; export with --dtype f32"), "\(error)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: path))
        XCTAssertNoThrow(try ExportGGUFCommand.run(specPath: Self.tinyLlama, adapterPath: adapter, architecture: "llama",
                                                   heads: "4:2", dtype: "f32", output: path))
    }

    func testNativeLlamaGroupsGiveAdaptcDeltaInLlamaCppOrder() throws {
        let adapter = try randomAdapter(Self.tinyLlama)
        let (checked, plan) = try SpecLoader.loadPlanned(path: Self.tinyLlama)
        let interpreter = try AdapterFiles.load(adapter, checked: checked, plan: plan, threads: 1)
        let names = ["self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output",
                     "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down"]
        let path = folder.appendingPathComponent("tiny.gguf").path
        _ = try ExportGGUFCommand.run(specPath: Self.tinyLlama, adapterPath: adapter, architecture: "llama", heads: "4:2",
                                      dtype: "f32", output: path)
        let file = try GGUFReader(path: path)
        XCTAssertEqual(file.value("general.architecture"), .string("llama"))
        XCTAssertEqual(file.value("general.name"), .string("TinyLlama"))
        XCTAssertEqual(file.value("adapter.lora.alpha"), .float(8, type: 6), "most common PEFT alpha: 7 of the attn pairs")
        XCTAssertEqual(file.tensors.count, 2 * plan.pairs.count)
        let alpha = 8.0, headDim = 8
        for pair in plan.pairs {
            let base = "blk.\(pair.layer).\(names[pair.module]!).weight"
            let a = try XCTUnwrap(file.tensor(base + ".lora_a")), b = try XCTUnwrap(file.tensor(base + ".lora_b"))
            XCTAssertEqual(a.ne, [pair.inFeatures, pair.rank], base)
            XCTAssertEqual(b.ne, [pair.rank, pair.outFeatures], base)
            let (av, bv) = (a.floats, b.floats)
            // ggml row n of q/k holds HF row (h, t, j) for n = (h, j, t) in [heads, head_dim/2, 2].
            func hfRow(_ n: Int) -> Int {
                guard pair.module == "self_attn.q_proj" || pair.module == "self_attn.k_proj" else { return n }
                let h = n / headDim, within = n % headDim
                return h * headDim + (within % 2) * (headDim / 2) + within / 2
            }
            var llamaCpp = [Double](repeating: 0, count: pair.outFeatures * pair.inFeatures)
            for n in 0..<pair.outFeatures {
                for i in 0..<pair.inFeatures {
                    var sum = 0.0
                    for k in 0..<pair.rank { sum += Double(bv[n * pair.rank + k]) * Double(av[k * pair.inFeatures + i]) }
                    llamaCpp[hfRow(n) * pair.inFeatures + i] = alpha / Double(pair.rank) * sum
                }
            }
            let delta = try interpreter.materializeDouble(pair)
            let scale = delta.map(abs).max()!
            XCTAssertGreaterThan(scale, 0, base)
            let error = zip(llamaCpp, delta).map { abs($0 - $1) }.max()! / scale
            XCTAssertLessThan(error, 1e-6, "\(base): max relative error \(error)")
        }
    }
}

extension PlanInterpreter {
    /// ΔW = s·B·A of one pair in float64 from the stored factors.
    func materializeDouble(_ pair: PairPlan) throws -> [Double] {
        let group = plan.groups.first { $0.pairs.contains(pair) }!
        func values(_ factor: String) -> [Float] {
            let tensor = plan.parameter("\(group.name).\(pair.layer).\(pair.module).\(factor)")!
            return Array(storage.parameters[tensor.offset..<(tensor.offset + tensor.count)])
        }
        let a = values("A"), b = values("B")
        var delta = [Double](repeating: 0, count: pair.outFeatures * pair.inFeatures)
        for o in 0..<pair.outFeatures {
            for i in 0..<pair.inFeatures {
                var sum = 0.0
                for k in 0..<pair.rank { sum += Double(b[o * pair.rank + k]) * Double(a[k * pair.inFeatures + i]) }
                delta[o * pair.inFeatures + i] = pair.scale * sum
            }
        }
        return delta
    }
}
