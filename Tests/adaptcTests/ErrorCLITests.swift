import AdaptRuntime
import AdaptcCore
import Foundation
import AdaptTestSupport
import XCTest

/// User errors: exit 1, exactly one `adaptc: error:` line naming the offending
/// file/tensor, and nothing left behind (no output, no temporary file).
final class ErrorCLITests: XCTestCase {
    private var sandbox: CLISandbox!
    private let spec = Repository.spec("tiny-qv.adapt.yaml")

    override func setUpWithError() throws { sandbox = try CLISandbox() }
    override func tearDown() { sandbox?.remove() }

    // MARK: helpers

    private func checked() throws -> CheckedSpec { try SpecLoader.load(path: spec) }

    /// The random tiny-qv adapter's tensors, to be altered and written.
    private func adapterTensors(seed: UInt64 = 51) -> [(key: String, shape: [Int], values: [Float])] {
        var random = TestRandom(seed: seed)
        var out: [(String, [Int], [Float])] = []
        for pair in TinyQv.pairs {
            out.append((pair.aKey, [pair.rank, 64], random.floats(pair.rank * 64)))
            out.append((pair.bKey, [64, pair.rank], random.floats(64 * pair.rank)))
        }
        return out
    }

    @discardableResult
    private func writeAdapter(_ name: String, tensors: [(key: String, shape: [Int], values: [Float])],
                              metadata: [String: String]) throws -> String {
        var writer = SafetensorsWriter(metadata: metadata)
        for t in tensors { writer.add(t.key, floats: t.values, shape: t.shape) }
        return try sandbox.write(bytes: try writer.encoded(), to: name)
    }

    private func writeGoodAdapter(_ name: String = "adapter.safetensors") throws {
        try writeAdapter(name, tensors: adapterTensors(), metadata: AdapterFiles.metadata(try checked()))
    }

    /// Inputs for eval: a valid one for every tiny-qv pair plus `extra`.
    private func writeInputs(_ name: String, extra: [(key: String, shape: [Int], values: [Float])] = [],
                             skipValid: Bool = false) throws {
        var random = TestRandom(seed: 52)
        var writer = SafetensorsWriter()
        if !skipValid {
            for pair in TinyQv.pairs { writer.add(pair.key, floats: random.floats(3 * 64), shape: [3, 64]) }
        }
        for t in extra { writer.add(t.key, floats: t.values, shape: t.shape) }
        try writer.write(to: sandbox.path(name))
    }

    /// Runs adaptc and checks the whole error contract.
    @discardableResult
    private func expectUserError(_ arguments: [String], mentions: [String], output: String?,
                                 file: StaticString = #filePath, line: UInt = #line) throws -> CLIResult {
        let before = sandbox.listing()
        let result = try sandbox.adaptc(arguments, file: file, line: line)
        XCTAssertEqual(result.status, 1, "exit status\n\(result)", file: file, line: line)
        XCTAssertEqual(result.stderrLines.count, 1, "exactly one stderr line\n\(result)", file: file, line: line)
        XCTAssertTrue(result.stderr.hasPrefix("adaptc: error: "), "\(result)", file: file, line: line)
        for text in mentions {
            XCTAssertTrue(result.stderr.contains(text), "stderr should mention \(text)\n\(result)", file: file, line: line)
        }
        if let output {
            XCTAssertFalse(FileManager.default.fileExists(atPath: output.hasPrefix("/") ? output : sandbox.path(output)),
                           "\(output) must not be written\n\(result)", file: file, line: line)
        }
        XCTAssertEqual(sandbox.listing(), before, "the command left files behind\n\(result)", file: file, line: line)
        return result
    }

    private func materialize(_ adapter: String, output: String = "delta.safetensors") -> [String] {
        ["materialize", spec, "--adapter", adapter, "-o", output]
    }

    private func eval(_ input: String, adapter: String = "adapter.safetensors", output: String = "y.safetensors") -> [String] {
        ["eval", spec, "--adapter", adapter, "--input", input, "-o", output]
    }

    // MARK: adapter files

    func testTruncatedAdapter() throws {
        try writeGoodAdapter("good.safetensors")
        let bytes = try sandbox.bytes("good.safetensors")
        try sandbox.write(bytes: Array(bytes.dropLast(37)), to: "truncated.safetensors")
        try expectUserError(materialize("truncated.safetensors"), mentions: ["truncated.safetensors"],
                            output: "delta.safetensors")
        try writeInputs("x.safetensors")
        try expectUserError(eval("x.safetensors", adapter: "truncated.safetensors"),
                            mentions: ["truncated.safetensors"], output: "y.safetensors")
        // Cut inside the header too.
        try sandbox.write(bytes: Array(bytes.prefix(40)), to: "header.safetensors")
        try expectUserError(materialize("header.safetensors"), mentions: ["header.safetensors"],
                            output: "delta.safetensors")
        // Not even the 8-byte length.
        try sandbox.write(bytes: [1, 2, 3], to: "tiny.safetensors")
        try expectUserError(materialize("tiny.safetensors"), mentions: ["tiny.safetensors"], output: "delta.safetensors")
    }

    func testAdapterWithWrongHash() throws {
        var metadata = AdapterFiles.metadata(try checked())
        metadata["adaptc.hash"] = "0123456789abcdef"
        try writeAdapter("other.safetensors", tensors: adapterTensors(), metadata: metadata)
        let result = try expectUserError(materialize("other.safetensors"), mentions: ["other.safetensors", "hash"],
                                         output: "delta.safetensors")
        XCTAssertTrue(result.stderr.contains("spec"), "should say it was made for another spec\n\(result)")
    }

    func testAdapterWithoutHash() throws {
        var metadata = AdapterFiles.metadata(try checked())
        metadata["adaptc.hash"] = nil
        try writeAdapter("peft.safetensors", tensors: adapterTensors(), metadata: metadata)
        try expectUserError(materialize("peft.safetensors"), mentions: ["peft.safetensors", "import-peft"],
                            output: "delta.safetensors")
        try writeAdapter("bare.safetensors", tensors: adapterTensors(), metadata: [:])
        try expectUserError(materialize("bare.safetensors"), mentions: ["bare.safetensors", "import-peft"],
                            output: "delta.safetensors")
    }

    func testAdapterTensorWithNaN() throws {
        var tensors = adapterTensors()
        let index = tensors.firstIndex { $0.key == "attn.1.attention.self.query.B" }!
        tensors[index].values[17] = .nan
        try writeAdapter("nan.safetensors", tensors: tensors, metadata: AdapterFiles.metadata(try checked()))
        try expectUserError(materialize("nan.safetensors"),
                            mentions: ["nan.safetensors", "attn.1.attention.self.query.B", "NaN"],
                            output: "delta.safetensors")
    }

    func testAdapterTensorWithInfinity() throws {
        var tensors = adapterTensors()
        let index = tensors.firstIndex { $0.key == "attn.3.attention.self.value.A" }!
        tensors[index].values[0] = -.infinity
        try writeAdapter("inf.safetensors", tensors: tensors, metadata: AdapterFiles.metadata(try checked()))
        try expectUserError(materialize("inf.safetensors"),
                            mentions: ["inf.safetensors", "attn.3.attention.self.value.A", "Inf"],
                            output: "delta.safetensors")
    }

    func testAdapterTensorWithWrongShape() throws {
        var tensors = adapterTensors()
        let index = tensors.firstIndex { $0.key == "attn.0.attention.self.value.A" }!
        tensors[index].shape = [8, 63]
        tensors[index].values = Array(tensors[index].values.prefix(8 * 63))
        try writeAdapter("shape.safetensors", tensors: tensors, metadata: AdapterFiles.metadata(try checked()))
        try expectUserError(materialize("shape.safetensors"),
                            mentions: ["shape.safetensors", "attn.0.attention.self.value.A", "[8, 63]"],
                            output: "delta.safetensors")
    }

    func testAdapterMissingTensor() throws {
        let tensors = adapterTensors().filter { $0.key != "attn.2.attention.self.query.B" }
        try writeAdapter("missing.safetensors", tensors: tensors, metadata: AdapterFiles.metadata(try checked()))
        try expectUserError(materialize("missing.safetensors"),
                            mentions: ["missing.safetensors", "attn.2.attention.self.query.B"],
                            output: "delta.safetensors")
    }

    func testAdapterFileMissing() throws {
        try expectUserError(materialize("nowhere.safetensors"), mentions: ["nowhere.safetensors"],
                            output: "delta.safetensors")
    }

    // MARK: eval inputs

    func testEvalInputForUncoveredPair() throws {
        try writeGoodAdapter()
        try writeInputs("x.safetensors", extra: [("2.attention.self.key", [3, 64], [Float](repeating: 0.5, count: 192))])
        try expectUserError(eval("x.safetensors"), mentions: ["x.safetensors", "2.attention.self.key"],
                            output: "y.safetensors")
        // A layer the model does not have.
        try writeInputs("x9.safetensors", extra: [("9.attention.self.query", [1, 64], [Float](repeating: 1, count: 64))],
                        skipValid: true)
        try expectUserError(eval("x9.safetensors"), mentions: ["x9.safetensors", "9.attention.self.query"],
                            output: "y.safetensors")
    }

    func testEvalInputWithWrongWidth() throws {
        try writeGoodAdapter()
        var writer = SafetensorsWriter()
        writer.add("0.attention.self.query", floats: [Float](repeating: 0.25, count: 3 * 64), shape: [3, 64])
        writer.add("1.attention.self.value", floats: [Float](repeating: 0.25, count: 3 * 60), shape: [3, 60])
        try writer.write(to: sandbox.path("wide.safetensors"))
        try expectUserError(eval("wide.safetensors"), mentions: ["wide.safetensors", "1.attention.self.value"],
                            output: "y.safetensors")
        // A 1-D input is refused the same way.
        var flat = SafetensorsWriter()
        flat.add("0.attention.self.query", floats: [Float](repeating: 0.25, count: 64), shape: [64])
        try flat.write(to: sandbox.path("flat.safetensors"))
        try expectUserError(eval("flat.safetensors"), mentions: ["flat.safetensors", "0.attention.self.query"],
                            output: "y.safetensors")
    }

    func testEvalInputGarbageKey() throws {
        try writeGoodAdapter()
        try writeInputs("x.safetensors", extra: [("garbage", [1, 64], [Float](repeating: 0, count: 64))])
        try expectUserError(eval("x.safetensors"), mentions: ["x.safetensors", "garbage"], output: "y.safetensors")
    }

    func testEvalInputWithNaN() throws {
        try writeGoodAdapter()
        var values = [Float](repeating: 0.5, count: 3 * 64)
        values[100] = .nan
        var writer = SafetensorsWriter()
        writer.add("2.attention.self.value", floats: values, shape: [3, 64])
        try writer.write(to: sandbox.path("xnan.safetensors"))
        try expectUserError(eval("xnan.safetensors"), mentions: ["xnan.safetensors", "2.attention.self.value", "NaN"],
                            output: "y.safetensors")
    }

    func testEvalOutputFolderMissing() throws {
        try writeGoodAdapter()
        try writeInputs("x.safetensors")
        try expectUserError(eval("x.safetensors", output: "/nonexistent/dir/x.safetensors"),
                            mentions: ["/nonexistent/dir"], output: "/nonexistent/dir/x.safetensors")
        try expectUserError(materialize("adapter.safetensors", output: "no/such/dir/d.safetensors"),
                            mentions: ["no/such/dir"], output: "no/such/dir/d.safetensors")
    }

    func testOutputPathIsAFolder() throws {
        try writeGoodAdapter()
        try FileManager.default.createDirectory(atPath: sandbox.path("taken"), withIntermediateDirectories: true)
        try sandbox.write("keep", to: "taken/keep.txt")
        try expectUserError(materialize("adapter.safetensors", output: "taken"), mentions: ["taken"], output: nil)
        XCTAssertEqual(try String(contentsOfFile: sandbox.path("taken/keep.txt"), encoding: .utf8), "keep")
    }

    // MARK: merge

    /// A base checkpoint with every tiny-qv weight; `alter` may drop or change entries.
    private func writeBase(_ name: String, alter: (inout [(key: String, dtype: DType, shape: [Int], bytes: [UInt8])]) -> Void = { _ in }) throws {
        var random = TestRandom(seed: 53)
        var entries: [(key: String, dtype: DType, shape: [Int], bytes: [UInt8])] = []
        for layer in TinyQv.layers {
            for module in ["attention.self.query", "attention.self.key", "attention.self.value"] {
                entries.append((TinyQv.weightKey(layer, module), .f32, [64, 64],
                                FloatNarrowing.bytes(random.floats(64 * 64), as: .f32)))
            }
        }
        alter(&entries)
        var writer = SafetensorsWriter(metadata: ["format": "pt"])
        for e in entries { writer.add(e.key, dtype: e.dtype, shape: e.shape, bytes: e.bytes) }
        try writer.write(to: sandbox.path(name))
    }

    private func merge(spec: String? = nil, base: String) -> [String] {
        ["merge", spec ?? self.spec, "--adapter", "adapter.safetensors", "--base", base, "-o", "merged.safetensors"]
    }

    func testMergeWithoutWeightsKey() throws {
        let text = try String(contentsOfFile: spec, encoding: .utf8)
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).filter { !$0.contains("weights:") }
        XCTAssertEqual(lines.count, text.split(separator: "\n", omittingEmptySubsequences: false).count - 1)
        try sandbox.write(lines.joined(separator: "\n"), to: "noweights.adapt.yaml")
        try writeGoodAdapter()  // the hash does not cover `weights`
        try writeBase("base.safetensors")
        try expectUserError(merge(spec: "noweights.adapt.yaml", base: "base.safetensors"),
                            mentions: ["noweights.adapt.yaml", "model.weights.key"], output: "merged.safetensors")
    }

    func testMergeBaseMissingTargetedWeight() throws {
        try writeGoodAdapter()
        let missing = TinyQv.weightKey(3, "attention.self.value")
        try writeBase("base.safetensors") { entries in entries.removeAll { $0.key == missing } }
        try expectUserError(merge(base: "base.safetensors"), mentions: ["base.safetensors", missing],
                            output: "merged.safetensors")
    }

    func testMergeBaseTargetedWeightWithWrongShapeOrDtype() throws {
        try writeGoodAdapter()
        let key = TinyQv.weightKey(0, "attention.self.query")
        try writeBase("shape.safetensors") { entries in
            let i = entries.firstIndex { $0.key == key }!
            entries[i].shape = [32, 128]
        }
        try expectUserError(merge(base: "shape.safetensors"), mentions: ["shape.safetensors", key],
                            output: "merged.safetensors")
        try writeBase("int.safetensors") { entries in
            let i = entries.firstIndex { $0.key == key }!
            entries[i].dtype = .i32
        }
        try expectUserError(merge(base: "int.safetensors"), mentions: ["int.safetensors", key, "I32"],
                            output: "merged.safetensors")
    }

    /// W + ΔW past F16's range would be written as Inf, which no reader accepts back.
    func testMergeOverflowingTheWeightDtypeIsAnError() throws {
        let tensors = TinyQv.pairs.flatMap { pair in
            [(key: pair.aKey, shape: [pair.rank, 64], values: [Float](repeating: 1, count: pair.rank * 64)),
             (key: pair.bKey, shape: [64, pair.rank], values: [Float](repeating: 1000, count: 64 * pair.rank))]
        }
        try writeAdapter("big.safetensors", tensors: tensors, metadata: AdapterFiles.metadata(try checked()))
        let key = TinyQv.weightKey(0, "attention.self.query")
        try writeBase("f16.safetensors") { entries in
            let i = entries.firstIndex { $0.key == key }!
            entries[i].dtype = .f16
            entries[i].bytes = FloatNarrowing.bytes([Float](repeating: 60000, count: 64 * 64), as: .f16)
        }
        let arguments = ["merge", spec, "--adapter", "big.safetensors", "--base", "f16.safetensors", "-o", "merged.safetensors"]
        try expectUserError(arguments, mentions: ["f16.safetensors", key, "overflows F16"], output: "merged.safetensors")
    }

    func testMergeBaseWeightWithNaN() throws {
        try writeGoodAdapter()
        let key = TinyQv.weightKey(2, "attention.self.query")
        try writeBase("nan.safetensors") { entries in
            let i = entries.firstIndex { $0.key == key }!
            let nan = Float.nan.bitPattern
            entries[i].bytes.replaceSubrange(40..<44, with: [UInt8(nan & 0xFF), UInt8((nan >> 8) & 0xFF),
                                                             UInt8((nan >> 16) & 0xFF), UInt8(nan >> 24)])
        }
        try expectUserError(merge(base: "nan.safetensors"), mentions: ["nan.safetensors", key, "NaN"],
                            output: "merged.safetensors")
    }

    // MARK: structures the planner does not support yet

    static let tensorTrainSpec = """
        adaptc: 1
        name: TtSmall
        model:
          layers: 2
          modules: {q: [16, 16], v: [16, 16]}
        adapters:
          - name: tt
            structure: tensor-train
            modules: [q, v]
            rank: 4
        """

    /// A tensor-train compiles; one whose prepared state would pass the memory
    /// limit is refused at plan time with the figure, and nothing is written.
    func testCompileTensorTrainAndItsMemoryLimit() throws {
        try sandbox.write(Self.tensorTrainSpec, to: "tt.adapt.yaml")
        let compiled = try sandbox.adaptc("compile", "tt.adapt.yaml", "-o", "gen")
        XCTAssertEqual(compiled.status, 0, "\(compiled)")
        XCTAssertTrue(sandbox.exists("gen/TtSmallAdapter.swift"))

        setenv("ADAPTC_MEMORY_LIMIT", "64", 1)
        defer { unsetenv("ADAPTC_MEMORY_LIMIT") }
        let before = sandbox.listing()
        let result = try sandbox.adaptc("compile", "tt.adapt.yaml", "-o", "gen2")
        XCTAssertEqual(result.status, 1, "\(result)")
        let located = diagnosticPattern(path: "tt.adapt.yaml", severities: "error")
        XCTAssertEqual(result.stderrLines.filter { $0.contains(": error: ") }.count, 1, "\(result)")
        let line = result.stderrLines.first { matches($0, located) && $0.contains("of prepared state") && $0.contains("64 bytes") }
        XCTAssertNotNil(line, "no `tt.adapt.yaml:LINE:COL: error: … prepared state … limit` line\n\(result)")
        XCTAssertFalse(sandbox.exists("gen2"), "compile of a failing spec must not create the output folder")
        XCTAssertEqual(sandbox.listing(), before)
    }

    /// init of a tensor structure starts at ΔW = 0 with random other cores,
    /// and materialize runs the plan from the command line.
    func testTensorTrainInitStartsAtZeroDelta() throws {
        try sandbox.write(Self.tensorTrainSpec, to: "tt.adapt.yaml")
        let initialised = try sandbox.adaptc("init", "tt.adapt.yaml", "-o", "a.safetensors", "--seed", "3")
        XCTAssertEqual(initialised.status, 0, "\(initialised)")
        let adapter = try SafetensorsFile.read(path: sandbox.path("a.safetensors"))
        let cores = adapter.tensors.map(\.name).filter { $0.hasPrefix("tt.core.") }.sorted()
        XCTAssertEqual(cores.count, 4, "layer, module, out, in cores")
        // The first out mode's core is zero, the others are not.
        for key in cores {
            let values = try adapter.floats(key)
            XCTAssertEqual(values.allSatisfy { $0 == 0 }, key == "tt.core.2", key)
        }
        let materialized = try sandbox.adaptc("materialize", "tt.adapt.yaml", "--adapter", "a.safetensors", "-o", "d.safetensors")
        XCTAssertEqual(materialized.status, 0, "\(materialized)")
        let deltas = try SafetensorsFile.read(path: sandbox.path("d.safetensors"))
        XCTAssertEqual(deltas.tensors.count, 4)
        for key in deltas.tensors.map(\.name) { XCTAssertTrue(try deltas.floats(key).allSatisfy { $0 == 0 }, key) }
    }
}
