import AdaptRuntime
import AdaptTestSupport
import Foundation
import XCTest

/// export-gguf through the executable: what it writes is a GGUF file the
/// test reader accepts, and every refusal is one line, exit 1, nothing written.
final class GGUFExportCLITests: XCTestCase {
    var sandbox: CLISandbox!

    override func setUpWithError() throws { sandbox = try CLISandbox() }
    override func tearDown() { sandbox.remove() }

    static let tinyLlama = Repository.root.appendingPathComponent("Tests/Fixtures/gguf/tiny-llama.adapt.yaml").path

    func testWritesAFileAndReplacesItAtomically() throws {
        try sandbox.write(try String(contentsOfFile: Self.tinyLlama, encoding: .utf8), to: "tiny.adapt.yaml")
        XCTAssertEqual(try sandbox.adaptc("init", "tiny.adapt.yaml", "-o", "a.safetensors").status, 0)
        let run = try sandbox.adaptc("export-gguf", "tiny.adapt.yaml", "--adapter", "a.safetensors", "--arch", "llama",
                                     "--heads", "4:2", "--dtype", "f16", "-o", "tiny.gguf")
        XCTAssertEqual(run.status, 0, "\(run)")
        XCTAssertTrue(run.stdout.contains("11 pairs (F16, alpha 8.0, scale folded into B for 4)"), "\(run)")
        let file = try GGUFReader(path: sandbox.path("tiny.gguf"))
        XCTAssertEqual(file.tensors.count, 22)
        XCTAssertTrue(file.tensors.allSatisfy { $0.type == 1 })
        XCTAssertEqual(sandbox.listing(), ["a.safetensors", "tiny.adapt.yaml", "tiny.gguf"], "no temporary file left behind")
    }

    func testRefusalsAreOneLineAndWriteNothing() throws {
        try sandbox.write(try String(contentsOfFile: Self.tinyLlama, encoding: .utf8), to: "tiny.adapt.yaml")
        try sandbox.copySpec("tt-factored.adapt.yaml")
        try sandbox.copySpec("lorta-cp.adapt.yaml")
        try sandbox.write("""
            adaptc: 1
            name: Pooler
            model:
              layers: 2
              modules: {pooler.dense: [8, 8], self_attn.v_proj: [8, 8]}
            adapters:
              - name: p
                structure: lora
                modules: [pooler.dense, self_attn.v_proj]
                rank: 2
            """, to: "pooler.adapt.yaml")
        for spec in ["tiny", "tt-factored", "lorta-cp", "pooler"] {
            XCTAssertEqual(try sandbox.adaptc("init", "\(spec).adapt.yaml", "-o", "\(spec).safetensors").status, 0, spec)
        }
        let cases: [(String, [String], String)] = [
            ("unknown architecture", ["tiny", "--arch", "gpt9"], "--arch \"gpt9\": export-gguf knows llama, qwen2, bert"),
            ("module bert lacks", ["tiny", "--arch", "bert"], "module 'mlp.gate_proj' has no llama.cpp tensor in architecture bert"),
            ("module no architecture has", ["pooler", "--arch", "qwen2"], "module 'pooler.dense' has no llama.cpp tensor in architecture qwen2"),
            ("tensor-train group", ["tt-factored", "--arch", "llama"], "group 'qkv' is tensor-train; export-gguf writes per-pair LoRA groups only"),
            ("cp group", ["lorta-cp", "--arch", "llama"], "is cp; export-gguf writes per-pair LoRA groups only"),
            ("missing --heads", ["tiny", "--arch", "llama"], "--arch llama needs --heads H[:KV]: q or k is adapted"),
            ("heads that do not divide", ["tiny", "--arch", "llama", "--heads", "3"], "not a multiple of 2 × 3 heads"),
            ("bad --heads", ["tiny", "--arch", "llama", "--heads", "4:x"], "--heads \"4:x\": expected H or H:KV"),
            ("bad --dtype", ["tiny", "--arch", "llama", "--heads", "4", "--dtype", "q8_0"], "--dtype \"q8_0\": export-gguf writes f32 or f16"),
        ]
        let before = sandbox.listing()
        for (label, arguments, needle) in cases {
            let spec = arguments[0]
            let run = try sandbox.adaptc(["export-gguf", "\(spec).adapt.yaml", "--adapter", "\(spec).safetensors"]
                                         + arguments.dropFirst() + ["-o", "out.gguf"])
            XCTAssertEqual(run.status, 1, "\(label): \(run)")
            XCTAssertEqual(run.stderrLines.count, 1, "\(label): \(run)")
            XCTAssertTrue(run.stderr.hasPrefix("adaptc: error: ") && run.stderr.contains(needle), "\(label): \(run)")
            XCTAssertEqual(sandbox.listing(), before, "\(label): \(run)")
        }
    }
}
