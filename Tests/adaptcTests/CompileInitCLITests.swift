import AdaptRuntime
import AdaptcCore
import Foundation
import XCTest

/// `adaptc compile` (deterministic Swift source) and `adaptc init` (DESIGN §3).
final class CompileInitCLITests: XCTestCase {
    private var sandbox: CLISandbox!

    override func setUpWithError() throws { sandbox = try CLISandbox() }
    override func tearDown() { sandbox?.remove() }

    // MARK: compile

    func testCompileWritesDeterministicSource() throws {
        let spec = Repository.spec("tiny-qv.adapt.yaml")
        let first = try sandbox.adaptc("compile", spec, "-o", "gen/nested")
        XCTAssertEqual(first.status, 0, "\(first)")
        XCTAssertTrue(first.stderr.isEmpty, "\(first)")
        let file = "gen/nested/TinyQvAdapter.swift"
        XCTAssertTrue(sandbox.exists(file), "\(first)\nlisting: \(sandbox.listing())")
        XCTAssertTrue(first.stdout.contains("TinyQvAdapter.swift"), "\(first)")
        let bytes = try sandbox.bytes(file)
        let text = String(decoding: bytes, as: UTF8.self)
        XCTAssertTrue(text.hasPrefix("// DO NOT EDIT."), String(text.prefix(200)))
        let header = text.split(separator: "\n").prefix(3).joined(separator: "\n")
        XCTAssertTrue(header.contains("tiny-qv.adapt.yaml"), "header names the spec file\n\(header)")
        XCTAssertFalse(header.contains(Repository.root.path), "no folders in the header\n\(header)")
        XCTAssertTrue(text.contains("import AdaptRuntime"))
        XCTAssertTrue(text.contains("TinyQvAdapter"))

        // Again, into the same (now existing) folder: identical bytes, other files kept.
        try sandbox.write("mine", to: "gen/nested/Other.swift")
        let second = try sandbox.adaptc("compile", spec, "-o", "gen/nested")
        XCTAssertEqual(second.status, 0, "\(second)")
        XCTAssertEqual(try sandbox.bytes(file), bytes, "compile is not deterministic")
        XCTAssertEqual(try String(contentsOfFile: sandbox.path("gen/nested/Other.swift"), encoding: .utf8), "mine")
        XCTAssertEqual(sandbox.listing(), ["gen", "gen/nested", "gen/nested/Other.swift", "gen/nested/TinyQvAdapter.swift"])

        // From another spec path (a copy elsewhere): same bytes, the header names the file only.
        try sandbox.copySpec("tiny-qv.adapt.yaml", as: "copy/tiny-qv.adapt.yaml")
        let third = try sandbox.adaptc("compile", "copy/tiny-qv.adapt.yaml", "-o", "gen2")
        XCTAssertEqual(third.status, 0, "\(third)")
        XCTAssertEqual(try sandbox.bytes("gen2/TinyQvAdapter.swift"), bytes)
    }

    func testCompileSeveralSpecs() throws {
        let specs = try Repository.allSpecs()
        let result = try sandbox.adaptc(["compile"] + specs + ["-o", "out"])
        XCTAssertEqual(result.status, 0, "\(result)")
        let written = try FileManager.default.contentsOfDirectory(atPath: sandbox.path("out")).sorted()
        XCTAssertEqual(written.count, specs.count, "\(written)")
        for name in written {
            XCTAssertTrue(name.hasSuffix("Adapter.swift"), name)
            XCTAssertTrue(String(decoding: try sandbox.bytes("out/\(name)"), as: UTF8.self).hasPrefix("// DO NOT EDIT."))
        }
        XCTAssertTrue(written.contains("TinyQvAdapter.swift"))
    }

    func testCompileWithOneBrokenSpecWritesNothing() throws {
        try sandbox.write(CheckPlanCLITests.malformedSpec, to: "bad.adapt.yaml")
        let good = Repository.spec("tiny-qv.adapt.yaml")
        // Into a folder that does not exist: it must not appear.
        var before = sandbox.listing()
        let fresh = try sandbox.adaptc("compile", good, "bad.adapt.yaml", "-o", "out")
        XCTAssertEqual(fresh.status, 1, "\(fresh)")
        XCTAssertFalse(fresh.stderrLines.isEmpty)
        let pattern = diagnosticPattern(path: "bad.adapt.yaml")
        for line in fresh.stderrLines { XCTAssertTrue(matches(line, pattern), "bad line: \(line)") }
        XCTAssertEqual(sandbox.listing(), before, "\(fresh)")

        // Into an existing folder: it keeps exactly what it had.
        try sandbox.write("old", to: "existing/TinyQvAdapter.swift")
        before = sandbox.listing()
        let existing = try sandbox.adaptc("compile", good, "bad.adapt.yaml", "-o", "existing")
        XCTAssertEqual(existing.status, 1, "\(existing)")
        XCTAssertEqual(sandbox.listing(), before)
        XCTAssertEqual(try String(contentsOfFile: sandbox.path("existing/TinyQvAdapter.swift"), encoding: .utf8), "old")
    }

    /// -o naming an existing file, or a folder under one: exit 1, one line, nothing written.
    func testCompileIntoAFileIsAUserError() throws {
        try sandbox.write("not a folder", to: "afile")
        let before = sandbox.listing()
        for output in ["afile", "afile/sub"] {
            let result = try sandbox.adaptc("compile", Repository.spec("tiny-qv.adapt.yaml"), "-o", output)
            XCTAssertEqual(result.status, 1, "\(result)")
            XCTAssertEqual(result.stderrLines.count, 1, "\(result)")
            XCTAssertTrue(result.stderr.hasPrefix("adaptc: error: "), "\(result)")
            XCTAssertTrue(result.stderr.contains("afile"), "\(result)")
            XCTAssertEqual(sandbox.listing(), before, "\(result)")
        }
    }

    func testCompileWithoutOutputIsBadUsage() throws {
        let result = try sandbox.adaptc("compile", Repository.spec("tiny-qv.adapt.yaml"))
        XCTAssertEqual(result.status, 64, "\(result)")
        XCTAssertTrue(sandbox.listing().isEmpty)
    }

    // MARK: init

    /// tiny-qv with its `init:` line replaced (the hash does not cover init).
    private func tinyQv(init line: String, as name: String) throws -> String {
        let text = try String(contentsOfFile: Repository.spec("tiny-qv.adapt.yaml"), encoding: .utf8)
        let original = "    init: {method: gaussian, seed: 1}"
        XCTAssertTrue(text.contains(original), "Specs/tiny-qv.adapt.yaml changed; update this test")
        return try sandbox.write(text.replacingOccurrences(of: original, with: line), to: name)
    }

    /// Reads an init output and checks keys, shapes, B = 0 and the hash; returns the A tensors.
    private func readInit(_ name: String, spec: String, file: StaticString = #filePath, line: UInt = #line)
        throws -> [String: [Float]]
    {
        let output = try SafetensorsFile.read(path: sandbox.path(name))
        let checked = try SpecLoader.load(path: spec)
        XCTAssertEqual(output.metadata["adaptc.hash"], SpecHash.hash(checked), "hash", file: file, line: line)
        XCTAssertEqual(output.metadata["adaptc.spec"], "TinyQv", file: file, line: line)
        var expected: [String: [Int]] = [:]
        for pair in TinyQv.pairs {
            expected[pair.aKey] = [pair.rank, 64]
            expected[pair.bKey] = [64, pair.rank]
        }
        XCTAssertEqual(Dictionary(uniqueKeysWithValues: output.tensors.map { ($0.name, $0.shape) }), expected,
                       file: file, line: line)
        var a: [String: [Float]] = [:]
        for entry in output.tensors {
            let values = try output.floats(entry.name)
            if entry.name.hasSuffix(".B") {
                XCTAssertTrue(values.allSatisfy { $0 == 0 }, "\(entry.name) must be zero", file: file, line: line)
            } else {
                a[entry.name] = values
            }
        }
        return a
    }

    func testInitZeroIsKaimingUniform() throws {
        let spec = try tinyQv(init: "    init: {method: zero, seed: 5}", as: "zero.adapt.yaml")
        let result = try sandbox.adaptc("init", spec, "-o", "a.safetensors")
        XCTAssertEqual(result.status, 0, "\(result)")
        XCTAssertTrue(result.stdout.contains("a.safetensors"), "\(result)")
        let a = try readInit("a.safetensors", spec: spec)
        let bound: Float = 1 / Float(64).squareRoot()
        for (key, values) in a {
            XCTAssertTrue(values.allSatisfy { abs($0) <= bound }, "\(key) outside ±1/√in")
            // Uniform over the whole interval, not a constant or a narrow band.
            XCTAssertGreaterThan(values.map(abs).max()!, 0.9 * bound, key)
            let mean = values.reduce(0, +) / Float(values.count)
            XCTAssertLessThan(abs(mean), 0.2 * bound, key)
            let std = (values.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Float(values.count)).squareRoot()
            XCTAssertEqual(std, bound / Float(3).squareRoot(), accuracy: 0.15 * bound, key)  // U(−b, b): b/√3
        }
        // Tensors differ from each other (one stream per tensor).
        XCTAssertNotEqual(a["attn.0.attention.self.query.A"], a["attn.1.attention.self.query.A"])
    }

    func testInitGaussianStandardDeviationIsOneOverRank() throws {
        let spec = Repository.spec("tiny-qv.adapt.yaml")  // init: {method: gaussian, seed: 1}
        let result = try sandbox.adaptc("init", spec, "-o", "g.safetensors")
        XCTAssertEqual(result.status, 0, "\(result)")
        let a = try readInit("g.safetensors", spec: spec)
        // Pool samples by rank: r 8 (7 tensors × 512) and r 4 (3.value, 256).
        var pooled: [Int: [Float]] = [:]
        for pair in TinyQv.pairs { pooled[pair.rank, default: []] += a[pair.aKey]! }
        XCTAssertEqual(Set(pooled.keys), [4, 8])
        for (rank, values) in pooled {
            let n = Double(values.count)
            let mean = values.map(Double.init).reduce(0, +) / n
            let std = (values.map { (Double($0) - mean) * (Double($0) - mean) }.reduce(0, +) / n).squareRoot()
            let want = 1 / Double(rank)
            XCTAssertEqual(std, want, accuracy: 0.2 * want, "std of A with r \(rank)")
            XCTAssertLessThan(abs(mean), 0.2 * want, "mean of A with r \(rank)")
            // Normal, not uniform: some samples beyond 2σ (≈ 4.6% of them).
            let tail = values.filter { abs(Double($0)) > 2 * want }.count
            XCTAssertGreaterThan(Double(tail) / n, 0.02, "tail of A with r \(rank)")
        }
    }

    func testInitSeedsAndDeterminism() throws {
        let spec = Repository.spec("tiny-qv.adapt.yaml")
        for (name, extra) in [("s1.safetensors", ["--seed", "9"]), ("s2.safetensors", ["--seed", "9"]),
                              ("s3.safetensors", ["--seed", "10"]), ("d1.safetensors", []),
                              ("d2.safetensors", ["--seed", "1"])] {
            let result = try sandbox.adaptc(["init", spec, "-o", name] + extra)
            XCTAssertEqual(result.status, 0, "\(result)")
        }
        XCTAssertEqual(try sandbox.bytes("s1.safetensors"), try sandbox.bytes("s2.safetensors"), "same seed, same bytes")
        // The spec's seed is 1: --seed 1 is the same as no --seed.
        XCTAssertEqual(try sandbox.bytes("d1.safetensors"), try sandbox.bytes("d2.safetensors"))
        let a1 = try readInit("s1.safetensors", spec: spec), a3 = try readInit("s3.safetensors", spec: spec)
        for key in a1.keys { XCTAssertNotEqual(a1[key], a3[key], "--seed 10 must change \(key)") }
        XCTAssertNotEqual(try sandbox.bytes("s1.safetensors"), try sandbox.bytes("d1.safetensors"))
    }

    /// An init output is an adapter the other commands accept: its ΔW is zero.
    func testInitOutputMaterializesToZero() throws {
        let spec = Repository.spec("tiny-qv.adapt.yaml")
        XCTAssertEqual(try sandbox.adaptc("init", spec, "-o", "a.safetensors").status, 0)
        let result = try sandbox.adaptc("materialize", spec, "--adapter", "a.safetensors", "-o", "d.safetensors")
        XCTAssertEqual(result.status, 0, "\(result)")
        let delta = try SafetensorsFile.read(path: sandbox.path("d.safetensors"))
        XCTAssertEqual(delta.tensors.count, 8)
        for entry in delta.tensors { XCTAssertTrue(try delta.floats(entry.name).allSatisfy { $0 == 0 }, entry.name) }
    }

    func testInitErrors() throws {
        let spec = Repository.spec("tiny-qv.adapt.yaml")
        // --base with a random init method is a user error, and nothing is written.
        try sandbox.write("x", to: "base.safetensors")
        let before = sandbox.listing()
        let base = try sandbox.adaptc("init", spec, "-o", "a.safetensors", "--base", "base.safetensors")
        XCTAssertEqual(base.status, 1, "\(base)")
        XCTAssertEqual(base.stderrLines.count, 1, "\(base)")
        XCTAssertTrue(base.stderr.hasPrefix("adaptc: error: "), "\(base)")
        XCTAssertTrue(base.stderr.contains("--base"), "\(base)")
        XCTAssertEqual(sandbox.listing(), before)
        // Output folder missing.
        let folder = try sandbox.adaptc("init", spec, "-o", "/nonexistent/dir/a.safetensors")
        XCTAssertEqual(folder.status, 1, "\(folder)")
        XCTAssertEqual(folder.stderrLines.count, 1, "\(folder)")
        XCTAssertTrue(folder.stderr.hasPrefix("adaptc: error: ") && folder.stderr.contains("/nonexistent/dir"), "\(folder)")
        // Not a number.
        let seed = try sandbox.adaptc("init", spec, "-o", "a.safetensors", "--seed", "x")
        XCTAssertEqual(seed.status, 64, "\(seed)")
        XCTAssertEqual(sandbox.listing(), before)
    }
}
