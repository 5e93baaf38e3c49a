import AdaptRuntime
import AdaptTestSupport
import Foundation
import XCTest

/// `adaptc init` with `cp-als` on a CP group through the executable:
/// materialize after init is the textbook float64 ALS (`Reference.als`:
/// explicit MTTKRP, Gaussian elimination) of the stacked W/s in the group's
/// order, from the same HOSVD start (Jacobi left singular vectors) and for
/// the sweeps adaptc reports, and the printed fit is the reference's; the
/// residual is W − ΔW; `residual: false` gives ΔW = 0 (the first out factor
/// zeroed); seeds reproduce files; bad bases fail with one line.
final class InitCPCLITests: XCTestCase {
    var sandbox: CLISandbox!

    override func setUpWithError() throws { sandbox = try CLISandbox() }
    override func tearDown() { sandbox.remove() }

    struct Variant {
        var order: [String]
        var rank = 2
        var layout = "out_in"
        var extra = ""
        var scale: Double { 6 / Double(rank) }
    }

    static func spec(_ v: Variant) -> String {
        StackedBase.model(layout: v.layout) + """

        adapters:
          - name: cp
            structure: cp
            modules: [query, value]
            factor: {out: [3, 4], in: [2, 5]}
            order: [\(v.order.joined(separator: ", "))]
            rank: \(v.rank)
            alpha: 6
            init: {method: cp-als\(v.extra)}
        """
    }

    static let variants = [
        // Stopped by the fit-change rule.
        Variant(order: ["layer", "module", "out.0", "out.1", "in.0", "in.1"], extra: ", tolerance: 1e-4"),
        // A permuted order, the base stored [in, out], stopped by the iteration cap.
        Variant(order: ["in.1", "out.1", "layer", "in.0", "module", "out.0"], layout: "in_out", extra: ", iterations: 6"),
    ]

    /// The reference ALS from the HOSVD start for `sweeps` sweeps (R is at
    /// most every mode's size, so the start has no seeded padding).
    static func reference(_ weights: [String: [Float]], _ v: Variant, sweeps: Int) -> (deltas: [String: [Double]], fit: Double) {
        let (x, shape) = StackedBase.stacked(weights, order: v.order, scale: v.scale)
        let start = shape.indices.map { k -> [Double] in
            let vectors = Reference.leftSingularVectors(Reference.unfolding(x, shape: shape, mode: k)).vectors
            var factor = [Double](repeating: 0, count: shape[k] * v.rank)
            for c in 0..<v.rank { for i in 0..<shape[k] { factor[i * v.rank + c] = vectors[c][i] } }
            return factor
        }
        let result = Reference.als(x, shape: shape, rank: v.rank, start: start, sweeps: sweeps)
        let approximation = Reference.cpReconstruction(result.factors, shape: shape, rank: v.rank)
        return (StackedBase.deltas(approximation, order: v.order, scale: v.scale), result.fits.last!)
    }

    static func sweeps(_ stdout: String) throws -> Int {
        let head = stdout.components(separatedBy: " sweep")[0]
        return try XCTUnwrap(Int(head.components(separatedBy: "; ").last!), stdout)
    }

    func testMaterializeIsTheReferenceALSAndResidualIsWMinusDelta() throws {
        for v in Self.variants {
            let weights = try StackedBase.write(sandbox, transposed: v.layout == "in_out")
            var fit = 0.0
            let stdout = try StackedBase.checkInit(sandbox, spec: Self.spec(v), weights: weights, transposed: v.layout == "in_out",
                                                   expected: {
                                                       let reference = Self.reference(weights, v, sweeps: try Self.sweeps($0))
                                                       fit = reference.fit
                                                       return reference.deltas
                                                   }, tolerance: 1e-5, what: "cp-als \(v.order)")
            XCTAssertTrue(stdout.contains("CP-ALS from the HOSVD start"), stdout)
            XCTAssertEqual(try InitTTSVDCLITests.figure(after: "; fit ", in: stdout), fit, accuracy: 1e-6, stdout)
            XCTAssertEqual(try InitTTSVDCLITests.figure(after: "relative error ‖W − ΔW‖/‖W‖ ", in: stdout), 1 - fit,
                           accuracy: 1e-5, stdout)
            let sweeps = try Self.sweeps(stdout)
            if v.extra.contains("iterations: 6") {
                XCTAssertEqual(sweeps, 6, stdout)
                XCTAssertTrue(stdout.contains("(iteration cap)"), stdout)
            } else {
                XCTAssertTrue(stdout.contains("(fit changed by < 0.0001)") && sweeps > 1, stdout)
            }
        }
    }

    func testResidualFalseStartsAtZeroDelta() throws {
        var v = Self.variants[1]
        v.extra = ", residual: false"
        try sandbox.write(Self.spec(v), to: "t.adapt.yaml")
        let weights = try StackedBase.write(sandbox, transposed: true)
        let run = try sandbox.adaptc("init", "t.adapt.yaml", "--base", "base.safetensors", "-o", "a.safetensors",
                                     "--residual", "r.safetensors")
        XCTAssertEqual(run.status, 0, "\(run)")
        // The first out mode in this order is out.1 (DESIGN §3).
        XCTAssertTrue(run.stdout.contains("residual: false, so cp.factor.out.1 is zeroed"), "\(run)")
        let adapter = try SafetensorsFile.read(path: sandbox.path("a.safetensors"))
        XCTAssertTrue(try adapter.floats("cp.factor.out.1").allSatisfy { $0 == 0 })
        XCTAssertFalse(try adapter.floats("cp.factor.in.1").allSatisfy { $0 == 0 })
        let materialized = try sandbox.adaptc("materialize", "t.adapt.yaml", "--adapter", "a.safetensors", "-o", "d.safetensors")
        XCTAssertEqual(materialized.status, 0, "\(materialized)")
        let deltas = try SafetensorsFile.read(path: sandbox.path("d.safetensors"))
        let residual = try SafetensorsFile.read(path: sandbox.path("r.safetensors"))
        XCTAssertEqual(deltas.tensors.count, 6)
        for entry in deltas.tensors {
            XCTAssertTrue(try deltas.floats(entry.name).allSatisfy { $0 == 0 }, entry.name)
            var stored = try residual.floats("layers.\(entry.name).weight")
            let t = stored
            for o in 0..<StackedBase.out { for i in 0..<StackedBase.inFeatures {
                stored[o * StackedBase.inFeatures + i] = t[i * StackedBase.out + o]
            } }
            XCTAssertEqual(stored, weights["layers.\(entry.name).weight"])
        }
    }

    /// Same seed, same files; with R above a mode's size the seed pads the
    /// start, so another seed changes the adapter.
    func testSameSeedSameFiles() throws {
        var v = Self.variants[0]
        v.rank = 3
        try sandbox.write(Self.spec(v), to: "t.adapt.yaml")
        try StackedBase.write(sandbox)
        var outputs: [[UInt8]] = []
        for (name, seed) in [("1", "5"), ("2", "5"), ("3", "6")] {
            let run = try sandbox.adaptc("init", "t.adapt.yaml", "--base", "base.safetensors", "-o", "a\(name).safetensors",
                                         "--residual", "r\(name).safetensors", "--seed", seed, "--threads", "2")
            XCTAssertEqual(run.status, 0, "\(run)")
            outputs.append(try sandbox.bytes("a\(name).safetensors") + sandbox.bytes("r\(name).safetensors"))
        }
        XCTAssertEqual(outputs[0], outputs[1])
        XCTAssertNotEqual(outputs[0], outputs[2], "module (size 2 < R 3) is padded from the seed")
    }

    func testBadBasesFailWithOneLineAndWriteNothing() throws {
        try sandbox.write(Self.spec(Self.variants[0]), to: "t.adapt.yaml")
        try StackedBase.write(sandbox, "missing.safetensors", drop: "layers.0.query.weight")
        try StackedBase.write(sandbox, "inf.safetensors", poison: true)
        try StackedBase.write(sandbox)
        let before = sandbox.listing()
        let cases: [([String], String, String?)] = [
            (["--base", "missing.safetensors"], "no tensor \"layers.0.query.weight\"", nil),
            (["--base", "inf.safetensors"], "tensor \"layers.2.value.weight\" contains", nil),
            (["--base", "base.safetensors"], "over the memory limit", "2000"),
        ]
        for (arguments, needle, limit) in cases {
            if let limit { setenv("ADAPTC_MEMORY_LIMIT", limit, 1) }
            defer { unsetenv("ADAPTC_MEMORY_LIMIT") }
            let run = try sandbox.adaptc(["init", "t.adapt.yaml", "-o", "a.safetensors"] + arguments)
            XCTAssertEqual(run.status, 1, "\(run)")
            XCTAssertEqual(run.stderrLines.count, 1, "\(run)")
            XCTAssertTrue(run.stderr.hasPrefix("adaptc: error: ") && run.stderr.contains(needle), "\(needle): \(run)")
            XCTAssertEqual(sandbox.listing(), before, "\(run)")
        }
    }

    /// LoftQ on a CP and on a Tucker group runs their own method (cp-als,
    /// hosvd) on the stacked W − Q: the error ‖W − (Q + ΔW)‖/‖W‖ by iteration
    /// stays below Q alone, never grows, and is what the written Q and the
    /// materialized ΔW give; after one iteration ΔW is the float64 reference
    /// (ALS from the HOSVD start, HOSVD) of the stacked (W − Q_1)/s.
    func testLoftQAlternatesWithTheGroupsOwnMethod() throws {
        let weights = try StackedBase.write(sandbox)
        for iterations in [1, 3] {
            let loftq = "method: loftq, quantiser: {bits: 4, group: 5}, iterations: \(iterations)"
            let cp = Self.spec(Self.variants[0]).replacingOccurrences(of: "method: cp-als, tolerance: 1e-4", with: loftq)
            let tucker = InitTuckerCLITests.spec(InitTuckerCLITests.variants[0]).replacingOccurrences(of: "method: hosvd", with: loftq)
            for (name, spec, method) in [("cp", cp, "CP-ALS from the HOSVD start"), ("tucker", tucker, "HOSVD (Gram/eigh)")] {
                try sandbox.write(spec, to: "\(name).adapt.yaml")
                let run = try sandbox.adaptc("init", "\(name).adapt.yaml", "--base", "base.safetensors", "-o", "\(name).safetensors",
                                             "--residual", "\(name)-q.safetensors")
                XCTAssertEqual(run.status, 0, "\(run)")
                XCTAssertTrue(run.stdout.contains(method), "\(run)")
                let materialized = try sandbox.adaptc("materialize", "\(name).adapt.yaml", "--adapter", "\(name).safetensors",
                                                      "-o", "\(name)-d.safetensors")
                XCTAssertEqual(materialized.status, 0, "\(materialized)")
                let q = try SafetensorsFile.read(path: sandbox.path("\(name)-q.safetensors"))
                let d = try SafetensorsFile.read(path: sandbox.path("\(name)-d.safetensors"))
                var missed = 0.0, total = 0.0
                var removed: [String: [Float]] = [:]
                for (key, w) in weights {
                    let base = try q.floats(key)
                    removed[key] = zip(w, base).map { $0 - $1 }
                    let delta = try d.floats(key.replacingOccurrences(of: "layers.", with: "").replacingOccurrences(of: ".weight", with: ""))
                    for k in w.indices {
                        total += Double(w[k]) * Double(w[k])
                        let r = Double(w[k]) - Double(base[k]) - Double(delta[k])
                        missed += r * r
                    }
                }
                let figures = try run.stdout.components(separatedBy: "by iteration ")[1].components(separatedBy: " (Q alone")[0]
                    .components(separatedBy: ", ").map { try XCTUnwrap(Double($0)) }
                let alone = try InitTTSVDCLITests.figure(after: "(Q alone ", in: run.stdout)
                XCTAssertEqual(figures.count, iterations, run.stdout)
                if iterations == 1 {
                    let expected = name == "cp"
                        ? Self.reference(removed, Self.variants[0], sweeps: try Self.sweeps(run.stdout)).deltas
                        : try InitTuckerCLITests.reference(removed, InitTuckerCLITests.variants[0], stdout: run.stdout)
                    for (key, want) in expected {
                        let got = try d.floats(key).map(Double.init)
                        XCTAssertLessThan(StackedBase.norm(zip(got, want).map { $0 - $1 }) / StackedBase.norm(want), 1e-4, "\(name) \(key)")
                    }
                }
                XCTAssertLessThan(figures.last!, alone, run.stdout)
                for (a, b) in zip(figures, figures.dropFirst()) { XCTAssertLessThanOrEqual(b, a * (1 + 1e-6), run.stdout) }
                XCTAssertEqual((missed / total).squareRoot(), figures.last!, accuracy: 2e-6, run.stdout)
            }
        }
    }
}
