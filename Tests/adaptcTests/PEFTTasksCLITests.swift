import AdaptRuntime
import Foundation
import AdaptTestSupport
import XCTest

/// `import-peft DIR… --tasks NAME…` (DESIGN §5): two PEFT adapters of the
/// tiny BERT base, the lora_qv fixture and a copy with every lora_B negated
/// (whose PEFT output is exactly the fixture's negated, ΔW being linear in
/// B), become one spec with a task each; `eval --task` of each equals PEFT's
/// output for that adapter. Mistakes are one line, exit 1, nothing written.
final class PEFTTasksCLITests: XCTestCase {
    private var sandbox: CLISandbox!

    override func setUpWithError() throws { sandbox = try CLISandbox() }
    override func tearDown() { sandbox?.remove() }

    /// A copy of fixture `fixture` at `name`, lora_B values multiplied by `sign`.
    private func peftFolder(_ name: String, from fixture: String = "lora_qv", sign: Float = 1) throws {
        try sandbox.write(String(contentsOfFile: PEFTFixtures.file("adapter_config.json", in: fixture), encoding: .utf8),
                          to: "\(name)/adapter_config.json")
        let original = try SafetensorsFile.read(path: PEFTFixtures.file("adapter_model.safetensors", in: fixture))
        var writer = SafetensorsWriter(metadata: ["format": "pt"])
        for entry in original.tensors {
            let values = try original.floats(entry.name)
            writer.add(entry.name, floats: entry.name.contains("lora_B") ? values.map { sign * $0 } : values, shape: entry.shape)
        }
        try writer.write(to: sandbox.path("\(name)/adapter_model.safetensors"))
    }

    func testEachTaskEvaluatesAsItsPEFTAdapter() throws {
        try peftFolder("plus")
        try peftFolder("minus", sign: -1)
        let run = try sandbox.adaptc("import-peft", "plus", "minus", "--tasks", "sst2", "mnli", "-o", "out", "--name", "qv")
        XCTAssertEqual(run.status, 0, "\(run)")
        let text = try String(contentsOfFile: sandbox.path("out/qv.adapt.yaml"), encoding: .utf8)
        XCTAssertTrue(text.contains("  tasks: [sst2, mnli]\n") && text.contains("    tasks: all\n"), text)
        let adapter = try SafetensorsFile.read(path: sandbox.path("out/qv.safetensors"))
        XCTAssertEqual(adapter.tensors.count, 2 * 16, adapter.tensors.map(\.name).description)
        XCTAssertNotNil(adapter.entry("lora.mnli.3.attention.self.value.B"))

        // Inputs and PEFT's deltas keyed LAYER.MODULE, as eval reads and writes them.
        let inputs = try SafetensorsFile.read(path: PEFTFixtures.file("inputs.safetensors", in: "lora_qv"))
        let deltas = try SafetensorsFile.read(path: PEFTFixtures.file("delta.safetensors", in: "lora_qv"))
        var writer = SafetensorsWriter()
        func short(_ name: String) -> String { String(name.dropFirst("encoder.layer.".count)) }
        for entry in inputs.tensors { writer.add(short(entry.name), floats: try inputs.floats(entry.name), shape: entry.shape) }
        try writer.write(to: sandbox.path("x.safetensors"))
        for (task, sign) in [("sst2", 1.0), ("mnli", -1.0)] {
            let eval = try sandbox.adaptc("eval", "out/qv.adapt.yaml", "--adapter", "out/qv.safetensors", "--input", "x.safetensors",
                                          "--task", task, "-o", "y-\(task).safetensors")
            XCTAssertEqual(eval.status, 0, "\(eval)")
            let y = try SafetensorsFile.read(path: sandbox.path("y-\(task).safetensors"))
            for entry in deltas.tensors {
                let want = try deltas.floats(entry.name).map { sign * Double($0) }
                let got = try y.floats(short(entry.name))
                let scale = want.map(abs).max()!
                XCTAssertGreaterThan(scale, 0)
                for (g, w) in zip(got, want) { XCTAssertEqual(Double(g), w, accuracy: 1e-5 * scale, "\(task) \(entry.name)") }
            }
        }
    }

    /// export-peft --task writes that task's folder back: the weights byte for
    /// byte as imported, the config as export-peft writes for the folder alone.
    func testExportTaskRoundTrips() throws {
        try peftFolder("plus")
        try peftFolder("minus", sign: -1)
        let run = try sandbox.adaptc("import-peft", "plus", "minus", "--tasks", "sst2", "mnli", "-o", "out", "--name", "qv")
        XCTAssertEqual(run.status, 0, "\(run)")
        for (task, folder) in [("sst2", "plus"), ("mnli", "minus")] {
            let export = try sandbox.adaptc("export-peft", "out/qv.adapt.yaml", "--adapter", "out/qv.safetensors", "--task", task,
                                            "-o", "back-\(task)")
            XCTAssertEqual(export.status, 0, "\(export)")
            XCTAssertEqual(try sandbox.bytes("back-\(task)/adapter_model.safetensors"), try sandbox.bytes("\(folder)/adapter_model.safetensors"), task)
            let single = try sandbox.adaptc("import-peft", folder, "-o", "one-\(task)", "--name", "qv")
            XCTAssertEqual(single.status, 0, "\(single)")
            let alone = try sandbox.adaptc("export-peft", "one-\(task)/qv.adapt.yaml", "--adapter", "one-\(task)/qv.safetensors",
                                           "-o", "alone-\(task)")
            XCTAssertEqual(alone.status, 0, "\(alone)")
            XCTAssertEqual(try sandbox.bytes("back-\(task)/adapter_config.json"), try sandbox.bytes("alone-\(task)/adapter_config.json"), task)
        }
        let missing = try sandbox.adaptc("export-peft", "out/qv.adapt.yaml", "--adapter", "out/qv.safetensors", "-o", "none")
        XCTAssertEqual(missing.status, 1, "\(missing)")
        XCTAssertEqual(missing.stderrLines, ["adaptc: error: out/qv.adapt.yaml: the spec has tasks [sst2, mnli]; export-peft needs --task NAME to choose one"])
        let unknown = try sandbox.adaptc("export-peft", "out/qv.adapt.yaml", "--adapter", "out/qv.safetensors", "--task", "qnli", "-o", "none")
        XCTAssertEqual(unknown.status, 1, "\(unknown)")
        XCTAssertEqual(unknown.stderrLines, ["adaptc: error: out/qv.adapt.yaml: unknown task 'qnli' for --task; the spec's tasks are [sst2, mnli]"])
        let plain = try sandbox.adaptc("export-peft", "one-sst2/qv.adapt.yaml", "--adapter", "one-sst2/qv.safetensors", "--task", "sst2", "-o", "none")
        XCTAssertEqual(plain.status, 1, "\(plain)")
        XCTAssertEqual(plain.stderrLines.count, 1, "\(plain)")
        XCTAssertFalse(sandbox.exists("none"), "nothing written: \(sandbox.listing())")
    }

    func testMistakesAreOneLineAndWriteNothing() throws {
        try peftFolder("plus")
        try peftFolder("minus", sign: -1)
        try peftFolder("wide", from: "rslora_patterns")
        let cases: [([String], String)] = [
            (["plus", "minus", "--tasks", "sst2"], "--tasks names 1 task for 2 PEFT folders; give one task per folder, in the same order"),
            (["plus", "minus", "--tasks", "sst2", "sst2"], "--tasks: task 'sst2' is named twice; each folder needs its own task"),
            (["plus", "minus"], "2 PEFT folders given without --tasks; name one task per folder (--tasks NAME…) to import them as tasks"),
            (["plus", "wide", "--tasks", "sst2", "mnli"],
             "wide: not the same adapter layout as plus (another base, modules, layers, ranks or scales); --tasks joins adapters of one base with the same modules"),
        ]
        for (arguments, line) in cases {
            let result = try sandbox.adaptc(["import-peft"] + arguments + ["-o", "out"])
            XCTAssertEqual(result.status, 1, "\(result)")
            XCTAssertEqual(result.stderrLines, ["adaptc: error: " + line], "\(result)")
            XCTAssertFalse(sandbox.exists("out"), "nothing written: \(sandbox.listing())")
        }
    }
}
