import AdaptRuntime
import AdaptcCore
import Foundation
import XCTest

/// `adaptc check` and `adaptc plan` through the built executable (DESIGN §1).
final class CheckPlanCLITests: XCTestCase {
    private var sandbox: CLISandbox!

    override func setUpWithError() throws { sandbox = try CLISandbox() }
    override func tearDown() { sandbox?.remove() }

    /// Several check errors at once: an invalid name, an unknown module, an
    /// override for a layer the group does not cover.
    static let malformedSpec = """
        adaptc: 1
        name: bad name
        model:
          layers: 4
          modules: {q: [16, 16], v: [16, 16]}
        adapters:
          - name: a
            structure: lora
            modules: [q, nope]
            rank: 4
            overrides: {"7.q": {rank: 2}}
        """

    /// A misspelt key (a parse error, with a "did you mean" hint).
    static let misspeltSpec = """
        adaptc: 1
        name: Misspelt
        model:
          layers: 4
          modules: {q: [16, 16]}
        adapters:
          - name: a
            structure: lora
            modules: [q]
            rank: 4
            alhpa: 8
        """

    static let goodSpec = """
        adaptc: 1
        name: Good
        model:
          layers: 2
          modules: {q: [16, 16]}
        adapters:
          - name: a
            structure: lora
            modules: [q]
            rank: 2
        """

    // MARK: check

    func testCheckEveryRepositorySpecSucceeds() throws {
        let specs = try Repository.allSpecs()
        XCTAssertFalse(specs.isEmpty, "no specs in Specs/")
        for spec in specs {
            let result = try sandbox.adaptc("check", spec)
            XCTAssertEqual(result.status, 0, "\(result)")
            XCTAssertTrue(result.stdout.contains("\(spec): ok"), "\(result)")
            // Warnings/notes are allowed, errors are not; every line in the contract's format.
            let diagnostic = diagnosticPattern(path: spec, severities: "warning|note")
            for line in result.stderrLines {
                XCTAssertTrue(matches(line, diagnostic), "unexpected stderr line: \(line)\n\(result)")
            }
        }
    }

    func testCheckAllRepositorySpecsInOneCall() throws {
        let specs = try Repository.allSpecs()
        let result = try sandbox.adaptc(["check"] + specs)
        XCTAssertEqual(result.status, 0, "\(result)")
        for spec in specs { XCTAssertTrue(result.stdout.contains("\(spec): ok"), "\(spec)\n\(result)") }
    }

    func testCheckMalformedSpecReportsLocatedDiagnostics() throws {
        // A relative path with a folder: diagnostics must repeat it exactly as given.
        try sandbox.write(Self.malformedSpec, to: "specs/bad.adapt.yaml")
        let given = "./specs/bad.adapt.yaml"
        let result = try sandbox.adaptc("check", given)
        XCTAssertEqual(result.status, 1, "\(result)")
        XCTAssertFalse(result.stderrLines.isEmpty, "no diagnostics\n\(result)")
        let pattern = diagnosticPattern(path: given)
        for line in result.stderrLines {
            XCTAssertTrue(matches(line, pattern), "line not `\(given):LINE:COL: severity: …`: \(line)")
        }
        let errors = result.stderrLines.filter { $0.contains(": error: ") }
        XCTAssertGreaterThanOrEqual(errors.count, 3, "expected the three errors of the spec\n\(result)")
        XCTAssertTrue(result.stderr.contains("'bad name'"), "the invalid name is not named\n\(result)")
        XCTAssertTrue(result.stderr.contains("nope"), "the unknown module is not named\n\(result)")
        XCTAssertTrue(result.stderr.contains("7.q"), "the stray override is not named\n\(result)")
        XCTAssertFalse(result.stdout.contains(": ok"), "\(result)")
    }

    func testCheckMisspeltKeySuggestsTheRightOne() throws {
        try sandbox.write(Self.misspeltSpec, to: "misspelt.adapt.yaml")
        let result = try sandbox.adaptc("check", "misspelt.adapt.yaml")
        XCTAssertEqual(result.status, 1, "\(result)")
        let pattern = diagnosticPattern(path: "misspelt.adapt.yaml", severities: "error")
        let line = result.stderrLines.first { matches($0, pattern) && $0.contains("alhpa") }
        XCTAssertNotNil(line, "\(result)")
        XCTAssertTrue(line?.hasPrefix("misspelt.adapt.yaml:11:") ?? false, "points at line 11\n\(result)")
        XCTAssertTrue(line?.contains("alpha") ?? false, "did-you-mean hint\n\(result)")
        let any = diagnosticPattern(path: "misspelt.adapt.yaml")
        for l in result.stderrLines { XCTAssertTrue(matches(l, any), "bad line: \(l)") }
    }

    func testCheckYAMLSyntaxErrorIsLocated() throws {
        try sandbox.write("adaptc: 1\nname: Broken\nmodel: {layers: [1, 2\n", to: "syntax.adapt.yaml")
        let result = try sandbox.adaptc("check", "syntax.adapt.yaml")
        XCTAssertEqual(result.status, 1, "\(result)")
        XCTAssertFalse(result.stderrLines.isEmpty, "\(result)")
        let pattern = diagnosticPattern(path: "syntax.adapt.yaml", severities: "error")
        XCTAssertTrue(result.stderrLines.contains { matches($0, pattern) }, "\(result)")
        let any = diagnosticPattern(path: "syntax.adapt.yaml")
        for line in result.stderrLines { XCTAssertTrue(matches(line, any), "bad line: \(line)") }
    }

    func testCheckSeveralSpecsOneBad() throws {
        try sandbox.write(Self.goodSpec, to: "good.adapt.yaml")
        try sandbox.write(Self.malformedSpec, to: "bad.adapt.yaml")
        let result = try sandbox.adaptc("check", "bad.adapt.yaml", "good.adapt.yaml")
        XCTAssertEqual(result.status, 1, "\(result)")
        XCTAssertTrue(result.stdout.contains("good.adapt.yaml: ok"), "the good spec's ok line is missing\n\(result)")
        XCTAssertFalse(result.stdout.contains("bad.adapt.yaml: ok"), "\(result)")
        let pattern = diagnosticPattern(path: "bad.adapt.yaml")
        XCTAssertFalse(result.stderrLines.isEmpty)
        for line in result.stderrLines { XCTAssertTrue(matches(line, pattern), "bad line: \(line)") }
    }

    func testCheckMissingFile() throws {
        let result = try sandbox.adaptc("check", "missing.adapt.yaml")
        XCTAssertEqual(result.status, 1, "\(result)")
        XCTAssertEqual(result.stderrLines.count, 1, "\(result)")
        XCTAssertTrue(result.stderr.hasPrefix("adaptc: error: "), "\(result)")
        XCTAssertTrue(result.stderr.contains("missing.adapt.yaml"), "\(result)")
    }

    func testCheckWithoutArgumentsIsBadUsage() throws {
        let result = try sandbox.adaptc("check")
        XCTAssertEqual(result.status, 64, "\(result)")
        XCTAssertFalse(result.stderr.isEmpty, "\(result)")
    }

    func testUnknownSubcommandIsBadUsage() throws {
        let result = try sandbox.adaptc("frobnicate")
        XCTAssertEqual(result.status, 64, "\(result)")
    }

    // MARK: plan

    /// 4 layers × (query r 8 + value r 8), except 3.value r 4: 2·r·64 per pair.
    static let tinyQvParameters = 7 * 2 * 8 * 64 + 2 * 4 * 64

    func testPlanText() throws {
        let spec = Repository.spec("tiny-qv.adapt.yaml")
        let (_, plan) = try SpecLoader.loadPlanned(path: spec)
        XCTAssertEqual(plan.parameterCount, Self.tinyQvParameters)
        let result = try sandbox.adaptc("plan", spec)
        XCTAssertEqual(result.status, 0, "\(result)")
        XCTAssertTrue(result.stdout.contains("group attn (lora)"), "\(result)")
        XCTAssertTrue(result.stdout.contains("parameters"), "\(result)")
        XCTAssertTrue(result.stdout.contains(String(plan.parameterCount)), "parameter count missing\n\(result)")
        XCTAssertTrue(result.stdout.contains("n=64"), "default --tokens is 64\n\(result)")
        XCTAssertTrue(result.stderr.isEmpty, "\(result)")
    }

    /// A tensor-train bond above what its neighbours let it carry: `plan`
    /// (and `check`) succeed and print the located warning with the rank it can reach.
    func testPlanWarnsOfABondItsNeighboursCannotFill() throws {
        try sandbox.write("""
            adaptc: 1
            name: Dead
            model: {layers: 2, modules: {fc: [16, 64]}}
            adapters:
              - name: fc
                structure: tensor-train
                modules: [fc]
                factor: {out: [4, 4], in: [8, 8]}
                order: [layer, out.0, out.1, in.0, in.1]
                ranks: [1, 8, 24, 8]
            """, to: "dead.adapt.yaml")
        for command in ["plan", "check"] {
            let result = try sandbox.adaptc(command, "dead.adapt.yaml")
            XCTAssertEqual(result.status, 0, "\(result)")
            XCTAssertTrue(result.stderrLines.contains(
                "dead.adapt.yaml:10:16: warning: bond rank 8 at bond 1 (out.0|out.1) can reach only 4 (bond 0's 1 × out.0's 4, "
                + "from the left); the rest is counted in parameters but never used"), "\(command)\n\(result)")
            XCTAssertEqual(result.stderrLines.count, 2, "\(command)\n\(result)")
        }
    }

    func testPlanJSON() throws {
        let spec = Repository.spec("tiny-qv.adapt.yaml")
        let (_, plan) = try SpecLoader.loadPlanned(path: spec)
        let result = try sandbox.adaptc("plan", spec, "--json", "--tokens", "3")
        XCTAssertEqual(result.status, 0, "\(result)")
        let object = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8))
        let root = try XCTUnwrap(object as? [String: Any], "not a JSON object: \(result.stdout)")
        XCTAssertEqual(root["tokens"] as? Int, 3)
        let groups = try XCTUnwrap(root["groups"] as? [[String: Any]])
        XCTAssertEqual(groups.count, 1)
        XCTAssertEqual(groups[0]["name"] as? String, "attn")
        XCTAssertEqual(groups[0]["pairs"] as? Int, 8)
        let adapter = try XCTUnwrap(groups[0]["adapter"] as? [String: Any])
        XCTAssertEqual(adapter["parameters"] as? Int, plan.parameterCount)
        XCTAssertEqual(adapter["parameters"] as? Int, Self.tinyQvParameters)
        let dense = try XCTUnwrap(groups[0]["dense"] as? [String: Any])
        XCTAssertEqual(dense["parameters"] as? Int, 8 * 64 * 64)
        // Per token: 2·r·(in + out) per pair.
        let perToken = TinyQv.pairs.map { 2 * $0.rank * ($0.inFeatures + $0.outFeatures) }.reduce(0, +)
        XCTAssertEqual(adapter["forward_flops"] as? Int, 3 * perToken)
    }

    /// A tensor group's path, modes and ranks come as data, with the spec's name and hash.
    func testPlanJSONOfATensorTrain() throws {
        let spec = Repository.spec("tt-factored.adapt.yaml")
        let (checked, plan) = try SpecLoader.loadPlanned(path: spec)
        let result = try sandbox.adaptc("plan", spec, "--json")
        XCTAssertEqual(result.status, 0, "\(result)")
        let root = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        XCTAssertEqual(root["spec"] as? String, "TTFactored")
        XCTAssertEqual(root["hash"] as? String, SpecHash.hash(checked))
        let group = try XCTUnwrap((root["groups"] as? [[String: Any]])?.first)
        XCTAssertEqual(group["layers"] as? [Int], Array(0..<6))
        XCTAssertEqual(group["modules"] as? [String], ["query", "key", "value"])
        XCTAssertEqual((group["modes"] as? [[String: Any]])?.map { $0["name"] as? String },
                       ["layer", "module", "out.0", "out.1", "out.2", "in.0", "in.1", "in.2"])
        XCTAssertEqual(group["ranks"] as? [Int], [6, 8, 8, 8, 8, 8, 8])
        let steps = try XCTUnwrap(group["steps"] as? [[String: Any]])
        XCTAssertEqual(steps.count, plan.groups[0].steps.count)
        XCTAssertEqual(Set(steps.compactMap { $0["phase"] as? String }), ["prepare", "token"])
        XCTAssertEqual((steps.last?["result"] as? [String: Any])?["name"] as? String, "y")
        // Stable across runs.
        XCTAssertEqual(try sandbox.adaptc("plan", spec, "--json").stdout, result.stdout)
    }

    func testPlanJSONForEveryRepositorySpec() throws {
        for spec in try Repository.allSpecs() {
            let (_, plan) = try SpecLoader.loadPlanned(path: spec)
            let result = try sandbox.adaptc("plan", "--json", spec)
            XCTAssertEqual(result.status, 0, "\(result)")
            let root = try XCTUnwrap(
                try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any], "\(result)")
            let groups = try XCTUnwrap(root["groups"] as? [[String: Any]])
            let total = groups.compactMap { ($0["adapter"] as? [String: Any])?["parameters"] as? Int }.reduce(0, +)
            XCTAssertEqual(total, plan.parameterCount, spec)
        }
    }

    func testPlanZeroTokensIsBadUsage() throws {
        let result = try sandbox.adaptc("plan", Repository.spec("tiny-qv.adapt.yaml"), "--tokens", "0")
        XCTAssertEqual(result.status, 64, "\(result)")
        XCTAssertTrue(result.stderr.contains("--tokens"), "\(result)")
        XCTAssertTrue(result.stdout.isEmpty, "\(result)")
    }

    func testPlanMalformedSpec() throws {
        try sandbox.write(Self.malformedSpec, to: "bad.adapt.yaml")
        let result = try sandbox.adaptc("plan", "bad.adapt.yaml")
        XCTAssertEqual(result.status, 1, "\(result)")
        let pattern = diagnosticPattern(path: "bad.adapt.yaml")
        XCTAssertFalse(result.stderrLines.isEmpty)
        for line in result.stderrLines { XCTAssertTrue(matches(line, pattern), "bad line: \(line)") }
    }
}
