import AdaptRuntime
import AdaptcCore
import Foundation
import AdaptTestSupport
import XCTest

/// `eval` and `materialize --task` on a lora group with tasks (DESIGN §2
/// "Tasks"): each task's output is x·(B_t·A_t)ᵀ of that task's own factors,
/// against a float64 loop here; `--task` missing or unknown, or given for a
/// spec without tasks, is one line, exit 1, nothing written.
final class TaskEvalCLITests: XCTestCase {
    private var sandbox: CLISandbox!

    override func setUpWithError() throws { sandbox = try CLISandbox() }
    override func tearDown() { sandbox?.remove() }

    static let spec = """
        adaptc: 1
        name: Multi
        model:
          layers: 2
          modules: {query: [8, 8], value: [8, 8]}
          tasks: [sst2, mnli]
          weights: {key: "l.{layer}.{module}.weight"}
        adapters:
          - name: attn
            structure: lora
            modules: [query, value]
            rank: 2
            tasks: all
        """

    /// `init`'s file with every tensor replaced by random values (names, shapes, metadata kept).
    private func randomAdapter() throws -> [String: [Float]] {
        let initResult = try sandbox.adaptc("init", "multi.adapt.yaml", "-o", "zero.safetensors")
        XCTAssertEqual(initResult.status, 0, "\(initResult)")
        let file = try SafetensorsFile.read(path: sandbox.path("zero.safetensors"))
        var random = TestRandom(seed: 7)
        var writer = SafetensorsWriter(metadata: file.metadata)
        var values: [String: [Float]] = [:]
        for entry in file.tensors {
            let v = random.floats(entry.shape.reduce(1, *))
            values[entry.name] = v
            writer.add(entry.name, floats: v, shape: entry.shape)
        }
        try writer.write(to: sandbox.path("adapter.safetensors"))
        return values
    }

    private func delta(_ values: [String: [Float]], task: String, layer: Int, module: String) -> [Double] {
        let a = values["attn.\(task).\(layer).\(module).A"]!, b = values["attn.\(task).\(layer).\(module).B"]!
        var d = [Double](repeating: 0, count: 64)
        for o in 0..<8 { for i in 0..<8 { for r in 0..<2 { d[o * 8 + i] += Double(b[o * 2 + r]) * Double(a[r * 8 + i]) } } }
        return d
    }

    func testEachTaskEvaluatesItsOwnFactors() throws {
        try sandbox.write(Self.spec, to: "multi.adapt.yaml")
        let values = try randomAdapter()
        XCTAssertEqual(values.count, 16, "init writes every task's pairs: \(values.keys.sorted())")
        var random = TestRandom(seed: 8)
        var inputs = SafetensorsWriter()
        let x = random.floats(3 * 8)
        inputs.add("1.value", floats: x, shape: [3, 8])
        try inputs.write(to: sandbox.path("x.safetensors"))
        for task in ["sst2", "mnli"] {
            let eval = try sandbox.adaptc("eval", "multi.adapt.yaml", "--adapter", "adapter.safetensors", "--input", "x.safetensors",
                                          "--task", task, "-o", "y-\(task).safetensors")
            XCTAssertEqual(eval.status, 0, "\(eval)")
            let y = try SafetensorsFile.read(path: sandbox.path("y-\(task).safetensors")).floats("1.value")
            let d = delta(values, task: task, layer: 1, module: "value")
            for row in 0..<3 {
                for o in 0..<8 {
                    var want = 0.0
                    for i in 0..<8 { want += d[o * 8 + i] * Double(x[row * 8 + i]) }
                    XCTAssertEqual(Double(y[row * 8 + o]), want, accuracy: 1e-5, "\(task) row \(row) out \(o)")
                }
            }
            let materialize = try sandbox.adaptc("materialize", "multi.adapt.yaml", "--adapter", "adapter.safetensors",
                                                 "--task", task, "-o", "d-\(task).safetensors")
            XCTAssertEqual(materialize.status, 0, "\(materialize)")
            let file = try SafetensorsFile.read(path: sandbox.path("d-\(task).safetensors"))
            for layer in 0..<2 {
                for module in ["query", "value"] {
                    let got = try file.floats("\(layer).\(module)")
                    for (g, w) in zip(got, delta(values, task: task, layer: layer, module: module)) {
                        XCTAssertEqual(Double(g), w, accuracy: 1e-5, "\(task) \(layer).\(module)")
                    }
                }
            }
        }
    }

    func testTaskMistakesAreOneLineAndWriteNothing() throws {
        try sandbox.write(Self.spec, to: "multi.adapt.yaml")
        _ = try randomAdapter()
        try sandbox.write(Self.spec.replacingOccurrences(of: "  tasks: [sst2, mnli]\n", with: "")
            .replacingOccurrences(of: "\n    tasks: all", with: ""), to: "plain.adapt.yaml")
        let cases: [([String], String)] = [
            (["eval", "multi.adapt.yaml", "--adapter", "adapter.safetensors", "--input", "adapter.safetensors", "-o", "out"],
             "multi.adapt.yaml: the spec has tasks [sst2, mnli]; eval needs --task NAME to choose one"),
            (["materialize", "multi.adapt.yaml", "--adapter", "adapter.safetensors", "--task", "qnli", "-o", "out"],
             "multi.adapt.yaml: unknown task 'qnli' for --task; the spec's tasks are [sst2, mnli]"),
            (["merge", "multi.adapt.yaml", "--adapter", "adapter.safetensors", "--base", "none.safetensors", "-o", "out"],
             "multi.adapt.yaml: the spec has tasks [sst2, mnli]; merge needs --task NAME to choose one"),
            // It used to reach a precondition on the task-less keys.
            (["export-gguf", "multi.adapt.yaml", "--adapter", "adapter.safetensors", "--arch", "llama", "-o", "out"],
             "multi.adapt.yaml: group 'attn' has tasks; export-gguf writes one adapter without tasks (export one task with `adaptc export-peft --task NAME`)"),
            (["materialize", "plain.adapt.yaml", "--adapter", "adapter.safetensors", "--task", "sst2", "-o", "out"],
             "plain.adapt.yaml: --task 'sst2' given, but the spec has no tasks; drop --task (materialize has one ΔW per pair)"),
        ]
        for (arguments, line) in cases {
            let result = try sandbox.adaptc(arguments)
            XCTAssertEqual(result.status, 1, "\(result)")
            XCTAssertEqual(result.stderrLines, ["adaptc: error: " + line], "\(result)")
            XCTAssertFalse(sandbox.exists("out"), "nothing written: \(sandbox.listing())")
        }
    }
}
