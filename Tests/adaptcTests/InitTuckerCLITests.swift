import AdaptRuntime
import AdaptTestSupport
import Foundation
import XCTest

/// `adaptc init` with `hosvd` and `hooi` on a Tucker group through the
/// executable: materialize after init is the float64 reference HOSVD / HOOI
/// (explicit unfoldings, Jacobi SVD, naive mode products: `Reference.tucker`)
/// of the stacked W/s in the group's order, `full` modes kept whole; the
/// residual is W − ΔW; `residual: false` gives ΔW = 0; seeds reproduce files;
/// `hooi` on a cp group and bad bases fail with one line and write nothing.
final class InitTuckerCLITests: XCTestCase {
    var sandbox: CLISandbox!

    override func setUpWithError() throws { sandbox = try CLISandbox() }
    override func tearDown() { sandbox.remove() }

    struct Variant {
        var order: [String]
        var ranks: [String: Int?]
        var layout = "out_in"
        var method = "hosvd"
        var extra = ""
        /// s = alpha / the largest non-full rank.
        var scale: Double { 6 / Double(ranks.values.compactMap { $0 }.max()!) }
    }

    static func spec(_ v: Variant) -> String {
        let ranks = StackedBase.names.map { "\($0): \(v.ranks[$0]!.map(String.init) ?? "full")" }.joined(separator: ", ")
        return StackedBase.model(layout: v.layout) + """

        adapters:
          - name: tk
            structure: tucker
            modules: [query, value]
            factor: {out: [3, 4], in: [2, 5]}
            order: [\(v.order.joined(separator: ", "))]
            ranks: {\(ranks)}
            alpha: 6
            init: {method: \(v.method)\(v.extra)}
        """
    }

    static let variants = [
        Variant(order: ["layer", "module", "out.0", "out.1", "in.0", "in.1"],
                ranks: ["layer": 2, "module": nil, "out.0": 2, "out.1": 3, "in.0": nil, "in.1": 3]),
        // A permuted order, the base stored [in, out], HOOI.
        Variant(order: ["in.1", "layer", "out.1", "module", "in.0", "out.0"],
                ranks: ["layer": 2, "module": 1, "out.0": nil, "out.1": 2, "in.0": 2, "in.1": 3], layout: "in_out",
                method: "hooi", extra: ", sweeps: 4"),
    ]

    /// The reference's ΔW per pair; for hooi as many sweeps as adaptc reports.
    static func reference(_ weights: [String: [Float]], _ v: Variant, stdout: String) throws -> [String: [Double]] {
        let (x, shape) = StackedBase.stacked(weights, order: v.order, scale: v.scale)
        var sweeps = 0
        if v.method == "hooi" {
            // "…; N HOOI sweeps (…)": N is what precedes it.
            let head = stdout.components(separatedBy: " HOOI sweep")[0]
            sweeps = try XCTUnwrap(Int(head.components(separatedBy: "; ").last!), stdout)
        }
        let result = Reference.tucker(x, shape: shape, ranks: v.order.map { v.ranks[$0]! }, sweeps: sweeps)
        return StackedBase.deltas(result.reconstruction, order: v.order, scale: v.scale)
    }

    func testMaterializeIsTheReferenceTuckerAndResidualIsWMinusDelta() throws {
        for v in Self.variants {
            let weights = try StackedBase.write(sandbox, transposed: v.layout == "in_out")
            let stdout = try StackedBase.checkInit(sandbox, spec: Self.spec(v), weights: weights, transposed: v.layout == "in_out",
                                                   expected: { try Self.reference(weights, v, stdout: $0) }, tolerance: 1e-5,
                                                   what: "\(v.method) \(v.order)")
            XCTAssertTrue(stdout.contains(v.method == "hooi" ? "HOOI from the HOSVD" : "HOSVD (Gram/eigh)"), stdout)
            if v.method == "hooi" { XCTAssertTrue(stdout.contains("fit by sweep"), stdout) }
        }
    }

    /// `residual: false`: the core is zeroed so ΔW = 0, the factors stay the
    /// decomposition's, and the residual base is W itself.
    func testResidualFalseStartsAtZeroDelta() throws {
        var v = Self.variants[0]
        v.extra = ", residual: false"
        try sandbox.write(Self.spec(v), to: "t.adapt.yaml")
        let weights = try StackedBase.write(sandbox)
        let run = try sandbox.adaptc("init", "t.adapt.yaml", "--base", "base.safetensors", "-o", "a.safetensors",
                                     "--residual", "r.safetensors")
        XCTAssertEqual(run.status, 0, "\(run)")
        XCTAssertTrue(run.stdout.contains("residual: false, so tk.core is zeroed"), "\(run)")
        let adapter = try SafetensorsFile.read(path: sandbox.path("a.safetensors"))
        XCTAssertTrue(try adapter.floats("tk.core").allSatisfy { $0 == 0 })
        XCTAssertFalse(try adapter.floats("tk.factor.out.1").allSatisfy { $0 == 0 })
        let materialized = try sandbox.adaptc("materialize", "t.adapt.yaml", "--adapter", "a.safetensors", "-o", "d.safetensors")
        XCTAssertEqual(materialized.status, 0, "\(materialized)")
        let deltas = try SafetensorsFile.read(path: sandbox.path("d.safetensors"))
        let residual = try SafetensorsFile.read(path: sandbox.path("r.safetensors"))
        XCTAssertEqual(deltas.tensors.count, 6)
        for entry in deltas.tensors {
            XCTAssertTrue(try deltas.floats(entry.name).allSatisfy { $0 == 0 }, entry.name)
            XCTAssertEqual(try residual.floats("layers.\(entry.name).weight"), weights["layers.\(entry.name).weight"])
        }
    }

    func testSameSeedSameFiles() throws {
        try sandbox.write(Self.spec(Self.variants[1]), to: "t.adapt.yaml")
        try StackedBase.write(sandbox, transposed: true)
        var outputs: [[UInt8]] = []
        for name in ["1", "2"] {
            let run = try sandbox.adaptc("init", "t.adapt.yaml", "--base", "base.safetensors", "-o", "a\(name).safetensors",
                                         "--residual", "r\(name).safetensors", "--seed", "5", "--threads", "2")
            XCTAssertEqual(run.status, 0, "\(run)")
            outputs.append(try sandbox.bytes("a\(name).safetensors") + sandbox.bytes("r\(name).safetensors"))
        }
        XCTAssertEqual(outputs[0], outputs[1])
    }

    /// `hooi` on a cp group is a spec error at its line; bad bases are one
    /// line; each exits 1 and writes nothing.
    func testBadInputFailsWithOneLineAndWritesNothing() throws {
        let cp = Self.spec(Self.variants[0])
            .replacingOccurrences(of: "structure: tucker", with: "structure: cp")
            .replacingOccurrences(of: #"ranks: \{[^}]*\}"#, with: "rank: 3", options: .regularExpression)
            .replacingOccurrences(of: "method: hosvd", with: "method: hooi")
        try sandbox.write(cp, to: "cp.adapt.yaml")
        try sandbox.write(Self.spec(Self.variants[0]), to: "t.adapt.yaml")
        try StackedBase.write(sandbox, "missing.safetensors", drop: "layers.1.value.weight")
        try StackedBase.write(sandbox, "inf.safetensors", poison: true)
        try StackedBase.write(sandbox)
        let line = cp.components(separatedBy: "\n").firstIndex { $0.contains("method: hooi") }! + 1
        let before = sandbox.listing()
        let cases: [([String], String)] = [
            (["cp.adapt.yaml", "--base", "base.safetensors"], "cp.adapt.yaml:\(line):"),
            (["cp.adapt.yaml", "--base", "base.safetensors"], "init method 'hooi' does not fit a cp group"),
            (["t.adapt.yaml", "--base", "missing.safetensors"], "no tensor \"layers.1.value.weight\""),
            (["t.adapt.yaml", "--base", "inf.safetensors"], "tensor \"layers.2.value.weight\" contains"),
        ]
        for (arguments, needle) in cases {
            let run = try sandbox.adaptc(["init"] + arguments + ["-o", "a.safetensors"])
            XCTAssertEqual(run.status, 1, "\(run)")
            XCTAssertEqual(run.stderrLines.count, 1, "\(run)")
            XCTAssertTrue(run.stderr.contains(needle), "\(needle): \(run)")
            XCTAssertEqual(sandbox.listing(), before, "\(run)")
        }
    }
}
