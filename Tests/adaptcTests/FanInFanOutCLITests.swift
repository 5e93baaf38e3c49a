import AdaptRuntime
import AdaptTestSupport
import AdaptcCore
import Foundation
import XCTest

/// `model.weights.layout: in_out` (GPT-2's Conv1D, PEFT's `fan_in_fan_out`):
/// the base stores each weight `[in, out]`, so merge, unmerge and the init
/// residual add `ΔWᵀ`, the principal inits decompose `W = storedᵀ`, and
/// import/export carry the flag. Checked against float64 loops written here.
final class FanInFanOutCLITests: XCTestCase {
    var sandbox: CLISandbox!

    override func setUpWithError() throws { sandbox = try CLISandbox() }
    override func tearDown() { sandbox.remove() }

    /// Non-square modules, so a missing or doubled transpose cannot hide.
    static let modules: [(name: String, out: Int, in: Int)] = [("attn.c_attn", 72, 24), ("mlp.c_fc", 40, 24)]

    func spec(layout: String = "in_out", initialise: String = "") -> String {
        """
        adaptc: 1
        name: Gpt2Conv
        model:
          layers: 2
          modules: {attn.c_attn: [72, 24], mlp.c_fc: [40, 24]}
          weights: {key: "transformer.h.{layer}.{module}.weight", layout: \(layout)}
        adapters:
          - name: lora
            structure: lora
            modules: [attn.c_attn, mlp.c_fc]
            rank: 4
            alpha: 8
        \(initialise)
        """
    }

    static var pairs: [ReferencePair] {
        (0..<2).flatMap { layer in
            modules.map { module in
                ReferencePair(layer: layer, module: module.name, outFeatures: module.out, inFeatures: module.in, rank: 4,
                              scale: 2, aKey: "lora.\(layer).\(module.name).A", bKey: "lora.\(layer).\(module.name).B")
            }
        }
    }

    static func key(_ layer: Int, _ module: String) -> String { "transformer.h.\(layer).\(module).weight" }

    /// A base whose weights are stored `[in, out]` (layer 1's c_fc in BF16, the
    /// rest F32) plus an untargeted bias; returns each weight as `[out, in]`
    /// (what the file holds, widened and transposed back) and the bias bytes.
    func writeBase(_ name: String, transposed: Bool = true, seed: UInt64 = 3) throws -> (weights: [String: [Float]], bias: [UInt8]) {
        var random = TestRandom(seed: seed)
        var writer = SafetensorsWriter(metadata: ["format": "pt"])
        var weights: [String: [Float]] = [:]
        for layer in 0..<2 {
            for module in Self.modules {
                let key = Self.key(layer, module.name)
                let dtype: DType = layer == 1 && module.name == "mlp.c_fc" ? .bf16 : .f32
                let w = random.floats(module.out * module.in)   // [out, in]
                let stored = transposed ? Self.transpose(w, rows: module.out, columns: module.in) : w
                let bytes = FloatNarrowing.bytes(stored, as: dtype)
                writer.add(key, dtype: dtype, shape: transposed ? [module.in, module.out] : [module.out, module.in], bytes: bytes)
                let held = dtype == .bf16 ? stored.map { Float(bitPattern: UInt32(FloatNarrowing.bfloat16Bits($0)) << 16) } : stored
                weights[key] = transposed ? Self.transpose(held, rows: module.in, columns: module.out) : held
            }
        }
        let bias = FloatNarrowing.bytes(random.floats(72), as: .f32)
        writer.add("transformer.h.0.attn.c_attn.bias", dtype: .f32, shape: [72], bytes: bias)
        try writer.write(to: sandbox.path(name))
        return (weights, bias)
    }

    static func transpose(_ m: [Float], rows: Int, columns: Int) -> [Float] {
        (0..<(rows * columns)).map { index in m[(index % rows) * columns + index / rows] }
    }

    /// `stored` `[in, out]` against float64 `W + sign·ΔW` `[out, in]`: F32 within
    /// 1e-6 relative to the tensor, BF16 within one ulp of the float64 value
    /// rounded to nearest even.
    func assertMerged(_ file: SafetensorsFile, _ key: String, want: [Double], out: Int, in inFeatures: Int,
                      line: UInt = #line) throws {
        let entry = try XCTUnwrap(file.entry(key))
        XCTAssertEqual(entry.shape, [inFeatures, out], key, line: line)
        let got = try file.floats(key)
        let scale = want.map(abs).max()!
        var worstUlps = 0, worstError = 0.0
        for o in 0..<out {
            for i in 0..<inFeatures {
                let value = got[i * out + o], expected = want[o * inFeatures + i]
                let bits = Int(FloatNarrowing.bfloat16Bits(value)), wantBits = Int(FloatNarrowing.bfloat16Bits(Float(expected)))
                worstUlps = max(worstUlps, abs(bits - wantBits))
                worstError = max(worstError, abs(Double(value) - expected))
            }
        }
        if entry.dtype == .bf16 {
            XCTAssertLessThanOrEqual(worstUlps, 1, "\(key): BF16 ulps from float64", line: line)
        } else {
            XCTAssertLessThanOrEqual(worstError, 1e-6 * scale, "\(key): error relative to max |W|", line: line)
        }
    }

    func testMergeAndUnmergeAddTheTransposedDelta() throws {
        try sandbox.write(spec(), to: "g.adapt.yaml")
        let checked = try SpecLoader.load(path: sandbox.path("g.adapt.yaml"))
        let tensors = try writeRandomAdapter(Self.pairs, checked: checked, to: sandbox.path("a.safetensors"), seed: 9)
        let (weights, bias) = try writeBase("base.safetensors")
        let merge = try sandbox.adaptc("merge", "g.adapt.yaml", "--adapter", "a.safetensors", "--base", "base.safetensors",
                                       "-o", "merged.safetensors")
        XCTAssertEqual(merge.status, 0, "\(merge)")
        let merged = try SafetensorsFile.read(path: sandbox.path("merged.safetensors"))
        XCTAssertEqual(try merged.rawBytes("transformer.h.0.attn.c_attn.bias"), bias)
        for pair in Self.pairs {
            let key = Self.key(pair.layer, pair.module)
            let want = zip(weights[key]!, referenceDelta(pair, tensors: tensors)).map { Double($0) + $1 }
            try assertMerged(merged, key, want: want, out: pair.outFeatures, in: pair.inFeatures)
        }
        let unmerge = try sandbox.adaptc("merge", "g.adapt.yaml", "--adapter", "a.safetensors", "--base", "merged.safetensors",
                                         "-o", "restored.safetensors", "--unmerge")
        XCTAssertEqual(unmerge.status, 0, "\(unmerge)")
        let restored = try SafetensorsFile.read(path: sandbox.path("restored.safetensors"))
        for pair in Self.pairs where pair.layer == 0 {   // F32: back to W up to rounding
            let key = Self.key(pair.layer, pair.module)
            try assertMerged(restored, key, want: weights[key]!.map(Double.init), out: pair.outFeatures, in: pair.inFeatures)
        }
    }

    /// PiSSA on a transposed base equals PiSSA on the same weights stored
    /// `[out, in]` (same factors bit for bit), and its residual is the
    /// transpose of that residual; both are W − s·B·A against float64.
    func testPrincipalInitAndResidualOnTransposedBase() throws {
        let initialise = "    init: {method: pissa, svd: exact}"
        try sandbox.write(spec(initialise: initialise), to: "in.adapt.yaml")
        try sandbox.write(spec(layout: "out_in", initialise: initialise), to: "out.adapt.yaml")
        let (weights, _) = try writeBase("base-in.safetensors")
        _ = try writeBase("base-out.safetensors", transposed: false)
        for (specName, base) in [("in", "base-in"), ("out", "base-out")] {
            let run = try sandbox.adaptc("init", "\(specName).adapt.yaml", "--base", "\(base).safetensors", "-o", "a-\(specName).safetensors",
                                         "--residual", "res-\(specName).safetensors")
            XCTAssertEqual(run.status, 0, "\(run)")
        }
        let adapterIn = try SafetensorsFile.read(path: sandbox.path("a-in.safetensors"))
        let adapterOut = try SafetensorsFile.read(path: sandbox.path("a-out.safetensors"))
        let residual = try SafetensorsFile.read(path: sandbox.path("res-in.safetensors"))
        var tensors: [String: [Float]] = [:]
        for pair in Self.pairs {
            for key in [pair.aKey, pair.bKey] {
                tensors[key] = try adapterIn.floats(key)
                XCTAssertEqual(tensors[key], try adapterOut.floats(key), key)
            }
            let key = Self.key(pair.layer, pair.module)
            let want = zip(weights[key]!, referenceDelta(pair, tensors: tensors)).map { Double($0) - $1 }
            try assertMerged(residual, key, want: want, out: pair.outFeatures, in: pair.inFeatures)
        }
    }

    func testStoredShapeMustMatchTheLayout() throws {
        try sandbox.write(spec(), to: "g.adapt.yaml")
        let checked = try SpecLoader.load(path: sandbox.path("g.adapt.yaml"))
        _ = try writeRandomAdapter(Self.pairs, checked: checked, to: sandbox.path("a.safetensors"), seed: 9)
        _ = try writeBase("base.safetensors", transposed: false)
        let run = try sandbox.adaptc("merge", "g.adapt.yaml", "--adapter", "a.safetensors", "--base", "base.safetensors",
                                     "-o", "merged.safetensors")
        XCTAssertEqual(run.status, 1, "\(run)")
        XCTAssertEqual(run.stderr.split(separator: "\n").count, 1, "\(run)")
        XCTAssertTrue(run.stderr.hasPrefix("adaptc: error: ") && run.stderr.contains("transformer.h.0.attn.c_attn.weight")
                      && run.stderr.contains("[24, 72]") && run.stderr.contains("in_out"), "\(run)")
        XCTAssertFalse(sandbox.exists("merged.safetensors"))
        try sandbox.write(spec(layout: "in-out"), to: "bad.adapt.yaml")
        let bad = try sandbox.adaptc("check", "bad.adapt.yaml")
        XCTAssertEqual(bad.status, 1, "\(bad)")
        XCTAssertTrue(bad.stderr.contains("must be one of out_in, in_out") && bad.stderr.contains("did you mean 'in_out'"), "\(bad)")
    }

    /// A PEFT folder with `fan_in_fan_out: true` imports as `layout: in_out`
    /// and exports back with the flag set; merge of the import on a GPT-2
    /// style base adds s·(B·A)ᵀ.
    func testImportAndExportCarryFanInFanOut() throws {
        var random = TestRandom(seed: 21)
        var writer = SafetensorsWriter(metadata: ["format": "pt"])
        var tensors: [String: [Float]] = [:]
        for pair in Self.pairs {
            let path = "base_model.model.transformer.h.\(pair.layer).\(pair.module)"
            let a = random.floats(4 * pair.inFeatures), b = random.floats(pair.outFeatures * 4)
            writer.add("\(path).lora_A.weight", floats: a, shape: [4, pair.inFeatures])
            writer.add("\(path).lora_B.weight", floats: b, shape: [pair.outFeatures, 4])
            tensors[pair.aKey] = a
            tensors[pair.bKey] = b
        }
        try sandbox.write("""
            {"peft_type": "LORA", "r": 4, "lora_alpha": 8, "target_modules": ["c_attn", "c_fc"],
             "fan_in_fan_out": true, "bias": "none", "use_rslora": false}
            """, to: "peft/adapter_config.json")
        try writer.write(to: sandbox.path("peft/adapter_model.safetensors"))
        let (weights, _) = try writeBase("base.safetensors")
        let imported = try sandbox.adaptc("import-peft", "peft", "-o", "out", "--name", "g", "--base", "base.safetensors")
        XCTAssertEqual(imported.status, 0, "\(imported)")
        let text = try String(contentsOfFile: sandbox.path("out/g.adapt.yaml"), encoding: .utf8)
        XCTAssertTrue(text.contains("layout: in_out"), text)
        let merge = try sandbox.adaptc("merge", "out/g.adapt.yaml", "--adapter", "out/g.safetensors", "--base", "base.safetensors",
                                       "-o", "merged.safetensors")
        XCTAssertEqual(merge.status, 0, "\(merge)")
        let merged = try SafetensorsFile.read(path: sandbox.path("merged.safetensors"))
        for pair in Self.pairs {
            let key = Self.key(pair.layer, pair.module)
            let want = zip(weights[key]!, referenceDelta(pair, tensors: tensors)).map { Double($0) + $1 }
            try assertMerged(merged, key, want: want, out: pair.outFeatures, in: pair.inFeatures)
        }
        let exported = try sandbox.adaptc("export-peft", "out/g.adapt.yaml", "--adapter", "out/g.safetensors", "-o", "back")
        XCTAssertEqual(exported.status, 0, "\(exported)")
        let config = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: sandbox.path("back/adapter_config.json")))) as! [String: Any]
        XCTAssertEqual(config["fan_in_fan_out"] as? Bool, true)
    }
}
