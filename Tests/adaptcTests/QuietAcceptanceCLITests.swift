import AdaptRuntime
import AdaptcCore
import Foundation
import XCTest

/// Inputs adaptc used to accept without a word (an adapter with tensors the spec
/// does not know, an input file with no tensors), a layer range far past the
/// model, and sizes that cannot be allocated: each is one line and exit 1.
final class QuietAcceptanceCLITests: XCTestCase {
    private var sandbox: CLISandbox!

    override func setUpWithError() throws {
        sandbox = try CLISandbox()
        try sandbox.copySpec("tiny-qv.adapt.yaml")
    }

    override func tearDown() { sandbox?.remove() }

    private func assertOneError(_ result: CLIResult, _ expected: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(result.status, 1, "\(result)", file: file, line: line)
        XCTAssertEqual(result.stderrLines, ["adaptc: error: \(expected)"], file: file, line: line)
    }

    func testAdapterWithTensorsTheSpecDoesNotKnowIsRefusedNamingThem() throws {
        let checked = try SpecLoader.load(path: sandbox.path("tiny-qv.adapt.yaml"))
        var writer = SafetensorsWriter(metadata: AdapterFiles.metadata(checked))
        for pair in TinyQv.pairs {
            writer.add(pair.aKey, floats: [Float](repeating: 0.5, count: pair.rank * 64), shape: [pair.rank, 64])
            writer.add(pair.bKey, floats: [Float](repeating: 0.5, count: 64 * pair.rank), shape: [64, pair.rank])
        }
        writer.add("attn.9.attention.self.query.A", floats: [Float](repeating: 0, count: 8 * 64), shape: [8, 64])
        writer.add("attn.0.attention.self.key.B", floats: [0], shape: [1])
        try writer.write(to: sandbox.path("extra.safetensors"))
        let result = try sandbox.adaptc("materialize", "tiny-qv.adapt.yaml", "--adapter", "extra.safetensors", "-o", "out.safetensors")
        assertOneError(result, "extra.safetensors: 2 tensors the spec does not know: \"attn.0.attention.self.key.B\", \"attn.9.attention.self.query.A\"")
        XCTAssertFalse(sandbox.exists("out.safetensors"))
    }

    func testInputWithNoTensorsIsAnError() throws {
        XCTAssertEqual(try sandbox.adaptc("init", "tiny-qv.adapt.yaml", "-o", "adapter.safetensors").status, 0)
        try SafetensorsWriter(metadata: ["note": "empty"]).write(to: sandbox.path("empty.safetensors"))
        try sandbox.write("previous", to: "y.safetensors")
        let result = try sandbox.adaptc("eval", "tiny-qv.adapt.yaml", "--adapter", "adapter.safetensors",
                                        "--input", "empty.safetensors", "-o", "y.safetensors")
        assertOneError(result, "empty.safetensors: holds no tensors; eval needs inputs keyed LAYER.MODULE, e.g. 3.query [n, in]")
        XCTAssertEqual(try sandbox.bytes("y.safetensors"), Array("previous".utf8))
    }

    func testLayerRangeFarPastTheModelIsOneDiagnostic() throws {
        let spec = try String(contentsOfFile: sandbox.path("tiny-qv.adapt.yaml"), encoding: .utf8)
            .replacingOccurrences(of: "    structure: lora\n", with: "    structure: lora\n    layers: \"0..<1048576\"\n")
        try sandbox.write(spec, to: "far.adapt.yaml")
        let result = try sandbox.adaptc("check", "far.adapt.yaml")
        XCTAssertEqual(result.status, 1, "\(result)")
        // The line of the inserted `layers:` (the fixture's layout may change); column 13 is its value.
        let line = spec.split(separator: "\n", omittingEmptySubsequences: false)
            .firstIndex { $0.hasPrefix("    layers: \"0..<1048576\"") }! + 1
        XCTAssertEqual(result.stderrLines, ["far.adapt.yaml:\(line):13: error: layers 4..<1048576 are out of range: the model has 4 layers (0..<4)"])
    }

    /// Within the size limits, but 1 PiB of parameters and gradients: more than
    /// any address space, so the allocation fails everywhere (and an address-space
    /// limit of 64 TiB, which ASan's shadow still fits in, makes sure of it).
    func testAdapterTooLargeForMemoryIsOneLineNotASignal() throws {
        try sandbox.write("""
            adaptc: 1
            name: Huge
            model:
              layers: 4096
              modules: {fc: [131072, 131072]}
            adapters:
              - {name: fc, structure: lora, modules: [fc], rank: 131072, init: {method: zero}}
            """, to: "huge.adapt.yaml")
        let binary = try Repository.adaptcBinary()
        let result = try XCTUnwrap(sandbox.run(
            ["-c", "ulimit -v 68719476736; exec \"$0\" init huge.adapt.yaml -o huge.safetensors", binary], executable: "/bin/sh"))
        XCTAssertFalse(result.signalled, "\(result)")
        XCTAssertEqual(result.status, 1, "\(result)")
        // Under Tools/sanitize address, ASan adds its own "==PID==WARNING: … failed to allocate" line.
        let lines = result.stderrLines.filter { !$0.hasPrefix("==") }
        XCTAssertEqual(lines.count, 1, "\(result)")
        XCTAssertTrue(lines.first?.hasPrefix("adaptc: error: cannot allocate 1024.0 TiB for the adapter's parameters and gradients") == true, "\(result)")
        XCTAssertFalse(sandbox.exists("huge.safetensors"))
    }
}
