import AdaptRuntime
import AdaptTestSupport
import Foundation
import XCTest

/// `adaptc init` with pissa/milora/olora through the executable: the residual
/// keeps every tensor and dtype, seeds make files reproducible, bad bases fail
/// with one line and write nothing.
final class InitPrincipalCLITests: XCTestCase {
    var sandbox: CLISandbox!

    override func setUpWithError() throws { sandbox = try CLISandbox() }
    override func tearDown() { sandbox.remove() }

    let spec = """
        adaptc: 1
        name: Principal
        model:
          layers: 2
          modules: {query: [48, 40], value: [48, 40]}
          weights: {key: "layers.{layer}.{module}.weight"}
        adapters:
          - name: attn
            structure: lora
            modules: [query, value]
            rank: 4
            alpha: 8
            init: {method: pissa, svd: randomized, oversampling: 4, power_iterations: 1}
        """

    /// BF16 targeted weights, an F16 bias and an I64 table that must pass untouched.
    func writeBase(_ name: String = "base.safetensors", poison: Bool = false) throws {
        var random = TestRandom(seed: 11)
        var writer = SafetensorsWriter(metadata: ["format": "pt"])
        for layer in 0..<2 {
            for module in ["query", "value"] {
                var values = random.floats(48 * 40)
                if poison, layer == 1, module == "value" { values[7] = .nan }
                let bits = values.map { poison && $0.isNaN ? UInt16(0x7FC0) : FloatNarrowing.bfloat16Bits($0) }
                writer.add("layers.\(layer).\(module).weight", dtype: .bf16, shape: [48, 40],
                           bytes: bits.flatMap { [UInt8($0 & 0xFF), UInt8($0 >> 8)] })
                writer.add("layers.\(layer).\(module).bias", dtype: .f16, shape: [48],
                           bytes: (0..<48).flatMap { _ in [UInt8(random.next() & 0xFF), 0x3C] })
            }
        }
        writer.add("embeddings.position_ids", dtype: .i64, shape: [5], bytes: (0..<40).map { UInt8($0) })
        try writer.write(to: sandbox.path(name))
    }

    func testResidualKeepsDtypesAndIsWMinusSBA() throws {
        try sandbox.write(spec, to: "p.adapt.yaml")
        try writeBase()
        let run = try sandbox.adaptc("init", "p.adapt.yaml", "--base", "base.safetensors", "-o", "a.safetensors",
                                     "--residual", "res.safetensors", "--seed", "5")
        XCTAssertEqual(run.status, 0, "\(run)")
        XCTAssertTrue(run.stdout.contains("captured energy") && run.stdout.contains("relative error of the rank-r part"), "\(run)")
        let base = try SafetensorsFile.read(path: sandbox.path("base.safetensors"))
        let residual = try SafetensorsFile.read(path: sandbox.path("res.safetensors"))
        let adapter = try SafetensorsFile.read(path: sandbox.path("a.safetensors"))
        XCTAssertEqual(residual.metadata, base.metadata)
        XCTAssertEqual(residual.tensors.map(\.name), base.tensors.map(\.name))
        for entry in base.tensors {
            XCTAssertEqual(residual.entry(entry.name)?.dtype, entry.dtype, entry.name)
            guard entry.name.hasSuffix(".weight") else {
                XCTAssertEqual(try residual.rawBytes(entry.name), try base.rawBytes(entry.name), entry.name)
                continue
            }
            // float64 W − 2·B·A rounded to BF16 (nearest even): within one BF16 ulp.
            let pair = entry.name.replacingOccurrences(of: "layers.", with: "").replacingOccurrences(of: ".weight", with: "")
            let w = try base.floats(entry.name), a = try adapter.floats("attn.\(pair).A"), b = try adapter.floats("attn.\(pair).B")
            let got = try residual.rawBytes(entry.name)
            for i in 0..<48 { for j in 0..<40 {
                var sba = 0.0
                for k in 0..<4 { sba += Double(b[i * 4 + k]) * Double(a[k * 40 + j]) }
                let expected = FloatNarrowing.bfloat16Bits(Float(Double(w[i * 40 + j]) - 2 * sba))
                let bits = UInt16(got[2 * (i * 40 + j)]) | UInt16(got[2 * (i * 40 + j) + 1]) << 8
                XCTAssertLessThanOrEqual(abs(Int(bits) - Int(expected)), 1, "\(entry.name)[\(i), \(j)]")
            } }
        }
    }

    func testSameSeedSameFiles() throws {
        try sandbox.write(spec, to: "p.adapt.yaml")
        try writeBase()
        var outputs: [[UInt8]] = []
        for (seed, name) in [("5", "1"), ("5", "2"), ("6", "3")] {
            let run = try sandbox.adaptc("init", "p.adapt.yaml", "--base", "base.safetensors", "-o", "a\(name).safetensors",
                                         "--residual", "r\(name).safetensors", "--seed", seed, "--threads", "2")
            XCTAssertEqual(run.status, 0, "\(run)")
            outputs.append(try sandbox.bytes("a\(name).safetensors") + sandbox.bytes("r\(name).safetensors"))
        }
        XCTAssertEqual(outputs[0], outputs[1])
        XCTAssertNotEqual(outputs[0], outputs[2])
    }

    func testBadBasesFailWithOneLineAndWriteNothing() throws {
        try sandbox.write(spec, to: "p.adapt.yaml")
        try writeBase("nan.safetensors", poison: true)
        try sandbox.write(spec.replacingOccurrences(of: "layers.{layer}", with: "layer.{layer}"), to: "wrongkey.adapt.yaml")
        try writeBase()
        let before = sandbox.listing()
        let cases: [([String], String)] = [
            (["init", "p.adapt.yaml", "-o", "a.safetensors"], "--base"),
            (["init", "p.adapt.yaml", "--base", "nan.safetensors", "-o", "a.safetensors", "--residual", "r.safetensors"],
             "\"layers.1.value.weight\" contains NaN"),
            (["init", "wrongkey.adapt.yaml", "--base", "base.safetensors", "-o", "a.safetensors"], "no tensor \"layer.0.query.weight\""),
            (["init", "p.adapt.yaml", "--base", "missing.safetensors", "-o", "a.safetensors"], "missing.safetensors"),
        ]
        for (arguments, needle) in cases {
            let run = try sandbox.adaptc(arguments)
            XCTAssertEqual(run.status, 1, "\(run)")
            XCTAssertEqual(run.stderrLines.count, 1, "\(run)")
            XCTAssertTrue(run.stderr.hasPrefix("adaptc: error: ") && run.stderr.contains(needle), "\(run)")
            XCTAssertEqual(sandbox.listing(), before, "\(run)")
        }
    }
}
