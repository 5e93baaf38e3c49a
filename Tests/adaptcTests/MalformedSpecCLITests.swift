import AdaptcCore
import Dispatch
import Foundation
import XCTest

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Malformed specs (DESIGN §5 rules) through the real CLI: each is run as
/// `adaptc check PATH` and `adaptc compile PATH -o gen`. Contract (DESIGN §1):
/// exit 1, never a signal, every stderr line `PATH:LINE:COLUMN: (error|warning|note): `
/// with PATH exactly as given, at least one error, and `compile` writes nothing.
final class MalformedSpecCLITests: XCTestCase {
    private var sandbox: CLISandbox!

    override func setUpWithError() throws { sandbox = try CLISandbox() }
    override func tearDown() { sandbox?.remove() }

    struct Case: Sendable {
        var name: String
        var yaml: String
        /// `LINE:COLUMN` of the first error, pinned for a few cases (nil: any).
        var at: String?
        /// A keyword the first error line contains (nil: any).
        var mentions: String?

        init(_ name: String, at: String? = nil, mentions: String? = nil, _ yaml: String) {
            self.name = name
            self.yaml = yaml
            self.at = at
            self.mentions = mentions
        }
    }

    /// A valid lora spec; most cases are it with one rule broken.
    static let valid = """
        adaptc: 1
        name: Sweep
        model:
          layers: 4
          modules:
            query: [64, 64]
            key: [64, 64]
            value: [64, 64]
        adapters:
          - name: attn
            structure: lora
            modules: [query, value]
            rank: 8
            alpha: 16

        """

    /// A valid tensor-train spec (checks clean; compile may refuse the structure).
    static let validTensorTrain = """
        adaptc: 1
        name: SweepTt
        model:
          layers: 4
          modules: {query: [64, 64], value: [64, 64]}
        adapters:
          - name: tt
            structure: tensor-train
            modules: [query, value]
            factor: {out: [8, 8], in: [8, 8]}
            rank: 4

        """

    /// Each breaks one rule of DESIGN §5.
    static let cases: [Case] = [
        Case("yaml-syntax-error", at: "3:8", mentions: "invalid YAML", """
            adaptc: 1
            name: Sweep
              model: 3

            """),
        Case("yaml-unclosed-flow-list", mentions: "invalid YAML", """
            adaptc: 1
            name: Sweep
            model: {layers: 4, modules: {query: [64, 64}}

            """),
        Case("empty-file", at: "1:1", mentions: "empty", ""),
        Case("only-a-comment", at: "1:1", mentions: "empty", "# nothing but a comment\n"),
        Case("wrong-version", at: "1:1", mentions: "version", valid.replacingOccurrences(of: "adaptc: 1", with: "adaptc: 2")),
        Case("missing-name", mentions: "name", valid.replacingOccurrences(of: "name: Sweep\n", with: "")),
        Case("name-not-upper-camel-case", at: "2:1", mentions: "UpperCamelCase",
             valid.replacingOccurrences(of: "name: Sweep", with: "name: sweep_spec")),
        Case("name-is-swift-keyword", mentions: "keyword", valid.replacingOccurrences(of: "name: Sweep", with: "name: Self")),
        Case("unknown-top-level-key", at: "15:1", mentions: "did you mean 'codegen'", valid + "codgen: {access: public}\n"),
        Case("unknown-group-key", at: "14:5", mentions: "did you mean 'alpha'",
             valid.replacingOccurrences(of: "alpha: 16", with: "alpah: 16")),
        Case("string-for-rank", at: "13:11", mentions: "integer", valid.replacingOccurrences(of: "rank: 8", with: "rank: eight")),
        Case("float-for-layers", at: "4:11", mentions: "integer", valid.replacingOccurrences(of: "layers: 4", with: "layers: 4.5")),
        Case("negative-rank", mentions: "rank", valid.replacingOccurrences(of: "rank: 8", with: "rank: -8")),
        Case("huge-float-dimension", mentions: nil, valid.replacingOccurrences(of: "query: [64, 64]", with: "query: [1e300, 64]")),
        Case("huge-integer-dimension", mentions: nil,
             valid.replacingOccurrences(of: "query: [64, 64]", with: "query: [99999999999999999999999, 64]")),
        Case("dimension-above-limit", at: "6:13", mentions: "1,048,576",
             valid.replacingOccurrences(of: "query: [64, 64]", with: "query: [1048577, 64]")),
        Case("duplicate-key", at: "14:5", mentions: "duplicate", valid.replacingOccurrences(of: "rank: 8\n", with: "rank: 8\n    rank: 4\n")),
        Case("group-name-not-snake-case", mentions: "lower_snake_case",
             valid.replacingOccurrences(of: "- name: attn", with: "- name: AttnGroup")),
        Case("duplicate-group-names", mentions: "attn", valid + """
              - name: attn
                structure: lora
                modules: [key]
                rank: 4

            """),
        Case("unknown-module", at: "12:22", mentions: "did you mean 'value'",
             valid.replacingOccurrences(of: "modules: [query, value]", with: "modules: [query, valeu]")),
        Case("layer-out-of-range", at: "12:17", mentions: "out of range",
             valid.replacingOccurrences(of: "structure: lora\n", with: "structure: lora\n    layers: [0, 4]\n")),
        Case("overlapping-pairs-between-groups", at: "18:20", mentions: "already covered", valid + """
              - name: extra
                structure: lora
                layers: [2]
                modules: [key, value]
                rank: 4

            """),
        Case("tensor-train-factor-product-mismatch", mentions: "factor",
             validTensorTrain.replacingOccurrences(of: "out: [8, 8]", with: "out: [4, 8]")),
        Case("tensor-train-mixed-shapes", mentions: "shape",
             validTensorTrain.replacingOccurrences(of: "value: [64, 64]", with: "value: [128, 64]")
                .replacingOccurrences(of: "    factor: {out: [8, 8], in: [8, 8]}\n", with: "")),
        // Modes layer 4, module 2, out.0 8, out.1 8, in.0 8, in.1 8: bond 0 is at most 4.
        Case("tensor-train-bond-rank-above-bound", at: "11:13", mentions: "bound",
             validTensorTrain.replacingOccurrences(of: "rank: 4", with: "ranks: [5, 4, 4, 4, 4]")),
        Case("override-outside-group", mentions: "override", valid + """
                overrides:
                  "1.key": {rank: 4}

            """),
        Case("overrides-on-shared-group", mentions: "shared", valid + """
                shared: true
                overrides:
                  "1.query": {rank: 4}

            """),
        Case("module-enum-case-collision", at: "7:5", mentions: "attentionQuery", """
            adaptc: 1
            name: Sweep
            model:
              layers: 2
              modules:
                attention.query: [8, 8]
                attentionQuery: [8, 8]
            adapters:
              - {name: attn, structure: lora, modules: [attentionQuery], rank: 2}

            """),
        Case("absolute-path-in-recycle-from", at: "15:36", mentions: "relative", valid + """
                init: {method: recycle, from: [/tmp/old.safetensors]}

            """),
        Case("prune-threshold-above-one", at: "15:9", mentions: "prune.threshold", valid + "prune: {threshold: 1.5}\n"),
        Case("unknown-structure", mentions: "did you mean 'tensor-train'",
             valid.replacingOccurrences(of: "structure: lora", with: "structure: tensor_train")),
        Case("tab-indentation", mentions: "tab", "adaptc: 1\n\tname: Sweep\n"),
        Case("nul-byte", at: "2:9", mentions: "control characters", "adaptc: 1\nname: Sw\u{0}eep\n"),
        Case("yaml-nesting-10000", at: "3:9", mentions: "invalid YAML",
             "adaptc: 1\nname: Sweep\nmodel: " + String(repeating: "[", count: 10_000) + "\n"),
        Case("alpha-nan", mentions: "finite", valid.replacingOccurrences(of: "alpha: 16", with: "alpha: .nan")),
        Case("huge-layer-range", mentions: "beyond",
             valid.replacingOccurrences(of: "structure: lora\n", with: "structure: lora\n    layers: \"0...9223372036854775807\"\n")),
        // Aliases that would expand to 10^6 module names must not be expanded into 10^6 diagnostics.
        Case("alias-expansion", mentions: "must be a string", """
            adaptc: 1
            name: Sweep
            model:
              layers: 4
              modules: {query: [64, 64], value: [64, 64]}
            adapters:
              - {name: a, structure: lora, modules: &a [query, query, query, query, query, query, query, query, query, query], rank: 8}
              - {name: b, structure: lora, modules: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a], rank: 8}
              - {name: c, structure: lora, modules: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b], rank: 8}
              - {name: d, structure: lora, modules: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c], rank: 8}
              - {name: e, structure: lora, modules: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d], rank: 8}
              - {name: f, structure: lora, modules: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e], rank: 8}

            """),
    ]

    // MARK: tests

    func testTableIsLargeEnough() {
        XCTAssertGreaterThanOrEqual(Self.cases.count, 26)
        XCTAssertEqual(Set(Self.cases.map(\.name)).count, Self.cases.count, "case names must be unique")
    }

    /// The specs the cases start from are valid: every case fails for its own defect.
    func testBaseSpecsAreValid() throws {
        for (name, yaml) in [("valid", Self.valid), ("valid-tt", Self.validTensorTrain)] {
            let path = "specs/\(name).adapt.yaml"
            try sandbox.write(yaml, to: path)
            guard let result = try sandbox.run(["check", path], context: name) else { continue }
            XCTAssertEqual(result.status, 0, "\(result)")
            XCTAssertEqual(result.stderrLines.filter { $0.contains(": error: ") }, [], "\(result)")
        }
        let compiled = try sandbox.run(["compile", "specs/valid.adapt.yaml", "-o", "gen"], context: "valid")
        XCTAssertEqual(compiled?.status, 0, "\(compiled.map(\.description) ?? "")")
        XCTAssertTrue(sandbox.exists("gen"))
    }

    func testEveryMalformedSpecWithCheck() throws {
        for c in Self.cases {
            let path = try write(c)
            try expectRejected(c, path: path, arguments: ["check", path])
        }
    }

    func testEveryMalformedSpecWithCompile() throws {
        for c in Self.cases {
            let path = try write(c)
            try expectRejected(c, path: path, arguments: ["compile", path, "-o", "gen"])
            XCTAssertFalse(sandbox.exists("gen"), "[\(c.name)] compile of a failing spec created gen/")
        }
    }

    /// Three independent check-stage errors, written out of the order check
    /// finds them, come out as three error lines sorted by line.
    /// A byte that is not UTF-8 is a spec error at its line and column, like any other.
    func testInvalidUTF8IsReportedWhereItIs() throws {
        let path = "utf8.adapt.yaml"
        try sandbox.write(bytes: Array("adaptc: 1\nname: Sw".utf8) + [0xFF] + Array("eep\n".utf8), to: path)
        guard let result = try sandbox.run(["check", path], context: "utf8") else { return }
        XCTAssertEqual(result.status, 1, "\(result)")
        XCTAssertEqual(result.stderrLines, ["\(path):2:9: error: the spec is not valid UTF-8 here"])
    }

    func testThreeCheckErrorsSortedByLine() throws {
        let yaml = """
            adaptc: 1
            name: Sweep
            prune: {threshold: 1.5}
            model:
              layers: 4
              modules: {query: [64, 64], value: [64, 64]}
            adapters:
              - name: Attn
                structure: lora
                layers: [0, 7]
                modules: [query, value]
                rank: 8

            """
        let path = "specs/three.adapt.yaml"
        try sandbox.write(yaml, to: path)
        for arguments in [["check", path], ["compile", path, "-o", "gen"]] {
            guard let result = try sandbox.run(arguments, context: "three") else { continue }
            XCTAssertEqual(result.status, 1, "\(result)")
            let errors = result.stderrLines.filter { matches($0, diagnosticPattern(path: path, severities: "error")) }
            XCTAssertEqual(errors.count, 3, "\(result)")
            XCTAssertEqual(errors.map { lineColumn($0, path: path).line }, [3, 8, 10], "\(result)")
            if errors.count == 3 {
                XCTAssertTrue(errors[0].contains("prune.threshold"), errors[0])
                XCTAssertTrue(errors[1].contains("lower_snake_case") || errors[1].contains("did you mean 'attn'"), errors[1])
                XCTAssertTrue(errors[2].contains("out of range"), errors[2])
            }
            for line in result.stderrLines {
                XCTAssertTrue(matches(line, diagnosticPattern(path: path)), "bad line: \(line)")
            }
            XCTAssertFalse(sandbox.exists("gen"))
        }
    }

    // MARK: helpers

    private func write(_ c: Case) throws -> String {
        let path = "specs/\(c.name).adapt.yaml"
        try sandbox.write(c.yaml, to: path)
        return path
    }

    private func lineColumn(_ line: String, path: String) -> (line: Int, column: Int) {
        let rest = line.dropFirst(path.count + 1).split(separator: ":", maxSplits: 2)
        guard rest.count >= 2, let l = Int(rest[0]), let c = Int(rest[1]) else { return (-1, -1) }
        return (l, c)
    }

    private func expectRejected(_ c: Case, path: String, arguments: [String]) throws {
        let before = sandbox.listing()
        guard let result = try sandbox.run(arguments, context: c.name) else { return }
        let context = "[\(c.name)] \(result)"
        XCTAssertFalse(result.signalled, "died of a signal \(context)")
        XCTAssertEqual(result.status, 1, "exit status \(context)")
        let any = diagnosticPattern(path: path)
        for line in result.stderrLines {
            XCTAssertTrue(matches(line, any), "not a `\(path):LINE:COLUMN: severity: ` line: \(line) \(context)")
        }
        let errorPattern = diagnosticPattern(path: path, severities: "error")
        let errors = result.stderrLines.filter { matches($0, errorPattern) }
        XCTAssertFalse(errors.isEmpty, "no error line \(context)")
        XCTAssertLessThan(result.stderrLines.count, 50, "a flood of diagnostics \(context)")
        if let first = errors.first {
            if let at = c.at {
                XCTAssertTrue(first.hasPrefix("\(path):\(at): error: "), "first error should be at \(at) \(context)")
            }
            if let keyword = c.mentions {
                XCTAssertTrue(first.contains(keyword), "first error should mention '\(keyword)' \(context)")
            }
        }
        XCTAssertFalse(result.stdout.contains("wrote"), "stdout \(context)")
        XCTAssertEqual(sandbox.listing(), before, "files written \(context)")
    }
}
