import AdaptRuntime
import AdaptTestSupport
import Foundation
import XCTest

/// `adaptc init` with `method: loftq` through the executable: `--residual`
/// writes the dequantised Q in each weight's dtype (other tensors byte for
/// byte), the printed errors shrink below quantisation alone, seeds make files
/// reproducible, the adapter round-trips through eval and materialize, and bad
/// settings or bases fail with one line and write nothing.
final class InitLoftQCLITests: XCTestCase {
    var sandbox: CLISandbox!

    override func setUpWithError() throws { sandbox = try CLISandbox() }
    override func tearDown() { sandbox.remove() }

    static let out = 48, inFeatures = 64, rank = 4, scale = 2.0

    func spec(_ initialisation: String = "{method: loftq, quantiser: {bits: 4, group: 32, kind: nf4}, iterations: 3, svd: exact}") -> String {
        """
        adaptc: 1
        name: Quantised
        model:
          layers: 2
          modules: {query: [48, 64], value: [48, 64]}
          weights: {key: "layers.{layer}.{module}.weight"}
        adapters:
          - name: attn
            structure: lora
            modules: [query, value]
            rank: 4
            alpha: 8
            init: \(initialisation)
        """
    }

    /// Low rank plus noise; query weights BF16, value weights F32, an F16 bias
    /// that must pass untouched.
    func writeBase(_ name: String = "base.safetensors", poison: Bool = false) throws {
        var random = TestRandom(seed: 17)
        var writer = SafetensorsWriter(metadata: ["format": "pt"])
        for layer in 0..<2 {
            for module in ["query", "value"] {
                let u = random.floats(Self.out * 3), v = random.floats(3 * Self.inFeatures)
                var w = random.floats(Self.out * Self.inFeatures, bound: 0.05)
                for i in 0..<Self.out { for j in 0..<Self.inFeatures { for k in 0..<3 {
                    w[i * Self.inFeatures + j] += u[i * 3 + k] * v[k * Self.inFeatures + j] / 3
                } } }
                if poison, layer == 1, module == "value" { w[9] = .nan }
                let dtype: DType = module == "query" ? .bf16 : .f32
                writer.add("layers.\(layer).\(module).weight", dtype: dtype, shape: [Self.out, Self.inFeatures],
                           bytes: FloatNarrowing.bytes(w, as: dtype))
                writer.add("layers.\(layer).\(module).bias", dtype: .f16, shape: [Self.out],
                           bytes: (0..<Self.out).flatMap { _ in [UInt8(random.next() & 0xFF), 0x3C] })
            }
        }
        try writer.write(to: sandbox.path(name))
    }

    /// The errors `adaptc init` prints: per iteration, then Q alone.
    func printedErrors(_ stdout: String) throws -> (iterations: [Double], alone: Double) {
        let line = try XCTUnwrap(stdout.split(separator: "\n").first { $0.contains("by iteration") }, stdout)
        let after = line.components(separatedBy: "by iteration ")[1]
        let iterations = after.components(separatedBy: " (")[0].components(separatedBy: ", ").compactMap(Double.init)
        let alone = try XCTUnwrap(Double(after.components(separatedBy: "Q alone ")[1].components(separatedBy: ";")[0]))
        return (iterations, alone)
    }

    func testResidualIsTheQuantisedBaseAndErrorsShrink() throws {
        try sandbox.write(spec(), to: "q.adapt.yaml")
        try writeBase()
        let run = try sandbox.adaptc("init", "q.adapt.yaml", "--base", "base.safetensors", "-o", "a.safetensors",
                                     "--residual", "res.safetensors", "--seed", "5")
        XCTAssertEqual(run.status, 0, "\(run)")
        let (iterations, alone) = try printedErrors(run.stdout)
        XCTAssertEqual(iterations.count, 3, "\(run)")
        for t in 1..<3 { XCTAssertLessThanOrEqual(iterations[t], iterations[t - 1], "\(run)") }
        XCTAssertLessThan(iterations[2], alone, "\(run)")

        let base = try SafetensorsFile.read(path: sandbox.path("base.safetensors"))
        let residual = try SafetensorsFile.read(path: sandbox.path("res.safetensors"))
        let adapter = try SafetensorsFile.read(path: sandbox.path("a.safetensors"))
        XCTAssertEqual(residual.metadata, base.metadata)
        XCTAssertEqual(residual.tensors.map(\.name), base.tensors.map(\.name))
        let quantiser = Quantiser(bits: 4, group: 32, kind: .nf4)
        for entry in base.tensors {
            XCTAssertEqual(residual.entry(entry.name)?.dtype, entry.dtype, entry.name)
            guard entry.name.hasSuffix(".weight") else {
                XCTAssertEqual(try residual.rawBytes(entry.name), try base.rawBytes(entry.name), entry.name)
                continue
            }
            let pair = entry.name.replacingOccurrences(of: "layers.", with: "").replacingOccurrences(of: ".weight", with: "")
            let w = try base.floats(entry.name), a = try adapter.floats("attn.\(pair).A"), b = try adapter.floats("attn.\(pair).B")
            // The same LoftQ through the runtime: the files hold its factors and its Q in the weight's dtype.
            let expected = try w.withUnsafeBufferPointer {
                try LoftQ.initialise($0, out: Self.out, in: Self.inFeatures, rank: Self.rank, scale: Self.scale,
                                     quantiser: quantiser, iterations: 3, decomposition: .exact)
            }
            XCTAssertEqual(a, expected.a, pair)
            XCTAssertEqual(b, expected.b, pair)
            let q = quantiser.dequantise(expected.quantised)
            XCTAssertEqual(try residual.rawBytes(entry.name), FloatNarrowing.bytes(q, as: entry.dtype), entry.name)
            // Independently: Q + s·B·A from the files is closer to W than Q alone, in float64.
            let stored = try residual.floats(entry.name)
            var withAdapter = 0.0, withoutAdapter = 0.0
            for i in 0..<Self.out { for j in 0..<Self.inFeatures {
                var sba = 0.0
                for k in 0..<Self.rank { sba += Double(b[i * Self.rank + k]) * Double(a[k * Self.inFeatures + j]) }
                let missed = Double(w[i * Self.inFeatures + j]) - Double(stored[i * Self.inFeatures + j])
                withAdapter += (missed - Self.scale * sba) * (missed - Self.scale * sba)
                withoutAdapter += missed * missed
            }}
            XCTAssertLessThan(withAdapter, 0.5 * withoutAdapter, entry.name)
        }
    }

    func testSameSeedSameFiles() throws {
        try sandbox.write(spec("{method: loftq, svd: randomized, oversampling: 4, power_iterations: 1}"), to: "q.adapt.yaml")
        try writeBase()
        var outputs: [[UInt8]] = []
        for (seed, name) in [("5", "1"), ("5", "2"), ("6", "3")] {
            let run = try sandbox.adaptc("init", "q.adapt.yaml", "--base", "base.safetensors", "-o", "a\(name).safetensors",
                                         "--residual", "r\(name).safetensors", "--seed", seed, "--threads", "2")
            XCTAssertEqual(run.status, 0, "\(run)")
            outputs.append(try sandbox.bytes("a\(name).safetensors") + sandbox.bytes("r\(name).safetensors"))
        }
        XCTAssertEqual(outputs[0], outputs[1])
        XCTAssertNotEqual(outputs[0], outputs[2])
    }

    /// eval gives x·(s·B·A)ᵀ and materialize s·B·A, from the factors init wrote.
    func testInitRoundTripsThroughEvalAndMaterialize() throws {
        try sandbox.write(spec(), to: "q.adapt.yaml")
        try writeBase()
        XCTAssertEqual(try sandbox.adaptc("init", "q.adapt.yaml", "--base", "base.safetensors", "-o", "a.safetensors").status, 0)
        var random = TestRandom(seed: 3)
        var writer = SafetensorsWriter()
        let pairs = ["0.query", "0.value", "1.query", "1.value"], rows = 3
        var inputs: [String: [Float]] = [:]
        for pair in pairs {
            inputs[pair] = random.floats(rows * Self.inFeatures)
            writer.add(pair, dtype: .f32, shape: [rows, Self.inFeatures], bytes: FloatNarrowing.bytes(inputs[pair]!, as: .f32))
        }
        try writer.write(to: sandbox.path("x.safetensors"))
        let eval = try sandbox.adaptc("eval", "q.adapt.yaml", "--adapter", "a.safetensors", "--input", "x.safetensors",
                                      "-o", "y.safetensors")
        XCTAssertEqual(eval.status, 0, "\(eval)")
        let materialize = try sandbox.adaptc("materialize", "q.adapt.yaml", "--adapter", "a.safetensors", "-o", "d.safetensors")
        XCTAssertEqual(materialize.status, 0, "\(materialize)")
        let adapter = try SafetensorsFile.read(path: sandbox.path("a.safetensors"))
        let y = try SafetensorsFile.read(path: sandbox.path("y.safetensors"))
        let d = try SafetensorsFile.read(path: sandbox.path("d.safetensors"))
        for pair in pairs {
            let a = try adapter.floats("attn.\(pair).A"), b = try adapter.floats("attn.\(pair).B")
            XCTAssertTrue(b.contains { $0 != 0 }, "loftq's B is not zero")
            var delta = [Double](repeating: 0, count: Self.out * Self.inFeatures)
            for i in 0..<Self.out { for j in 0..<Self.inFeatures { for k in 0..<Self.rank {
                delta[i * Self.inFeatures + j] += Self.scale * Double(b[i * Self.rank + k]) * Double(a[k * Self.inFeatures + j])
            } } }
            let size = delta.map(abs).max()!
            for (got, want) in zip(try d.floats(pair), delta) { XCTAssertEqual(Double(got), want, accuracy: 1e-5 * size, pair) }
            let x = inputs[pair]!, got = try y.floats(pair)
            for r in 0..<rows { for i in 0..<Self.out {
                let want = (0..<Self.inFeatures).map { Double(x[r * Self.inFeatures + $0]) * delta[i * Self.inFeatures + $0] }.reduce(0, +)
                XCTAssertEqual(Double(got[r * Self.out + i]), want, accuracy: 1e-5 * size * Double(Self.inFeatures), pair)
            } }
        }
    }

    func testBadSettingsAndBasesFailWithOneLineAndWriteNothing() throws {
        try writeBase()
        try writeBase("nan.safetensors", poison: true)
        try sandbox.write(spec(), to: "q.adapt.yaml")
        let settings: [(String, String)] = [
            ("{method: loftq, quantiser: {bits: 3}}", "'init.quantiser.bits' must be 4 or 8, found 3"),
            ("{method: loftq, quantiser: {bits: 8, kind: nf4}}", "'nf4' has 16 levels"),
            ("{method: loftq, quantiser: {group: 48}}", "quantiser group 48 does not divide module 'query''s in features 64"),
            ("{method: loftq, quantiser: {kind: nf5}}", "nf5"),
            ("{method: loftq, iterations: 0}", "'init.iterations' must be between 1 and 1000"),
            ("{method: pissa, quantiser: {bits: 4}}", "'init.quantiser' applies only to init method 'loftq'"),
        ]
        var cases: [([String], String)] = [
            (["init", "q.adapt.yaml", "--base", "nan.safetensors", "-o", "a.safetensors", "--residual", "r.safetensors"],
             "\"layers.1.value.weight\" contains NaN"),
            (["init", "q.adapt.yaml", "-o", "a.safetensors"], "--base"),
        ]
        for (index, (initialisation, needle)) in settings.enumerated() {
            try sandbox.write(spec(initialisation), to: "bad\(index).adapt.yaml")
            cases.append((["init", "bad\(index).adapt.yaml", "--base", "base.safetensors", "-o", "a.safetensors",
                           "--residual", "r.safetensors"], needle))
        }
        let before = sandbox.listing()
        for (arguments, needle) in cases {
            let run = try sandbox.adaptc(arguments)
            XCTAssertEqual(run.status, 1, "\(run)")
            XCTAssertEqual(run.stderrLines.count, 1, "\(run)")
            XCTAssertTrue(run.stderr.contains("error: ") && run.stderr.contains(needle), "\(needle): \(run)")
            XCTAssertEqual(sandbox.listing(), before, "\(run)")
        }
    }
}
