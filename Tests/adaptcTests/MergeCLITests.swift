import AdaptRuntime
import AdaptcCore
import Foundation
import AdaptTestSupport
import XCTest

/// `adaptc merge` and `--unmerge` on a base checkpoint written here: targeted
/// weights in F32, BF16 and F16, untargeted tensors of other dtypes, metadata.
final class MergeCLITests: XCTestCase {
    private var sandbox: CLISandbox!

    override func setUpWithError() throws { sandbox = try CLISandbox() }
    override func tearDown() { sandbox?.remove() }

    /// Targeted weights not stored as F32.
    static let narrowed: [String: DType] = [
        TinyQv.weightKey(2, "attention.self.value"): .bf16,
        TinyQv.weightKey(1, "attention.self.query"): .f16,
    ]

    static let baseMetadata = ["format": "pt", "origin": "MergeCLITests", "adaptc.hash": "not-this-one"]

    /// The base checkpoint: every q/k/v weight of tiny-qv plus an I64 and an F32 bias;
    /// returns each tensor's widened values (computable ones) and bytes.
    private func writeBase(_ name: String, seed: UInt64) throws -> (values: [String: [Float]], bytes: [String: [UInt8]]) {
        var random = TestRandom(seed: seed)
        var writer = SafetensorsWriter(metadata: Self.baseMetadata)
        var values: [String: [Float]] = [:], bytes: [String: [UInt8]] = [:]
        for layer in TinyQv.layers {
            for module in ["attention.self.query", "attention.self.key", "attention.self.value"] {
                let key = TinyQv.weightKey(layer, module)
                let dtype = Self.narrowed[key] ?? .f32
                var w = random.floats(64 * 64)
                let encoded = FloatNarrowing.bytes(w, as: dtype)
                if dtype != .f32 {
                    // What the file holds, widened back (the reference starts from it).
                    w = (0..<w.count).map { i in
                        let bits = UInt16(encoded[2 * i]) | UInt16(encoded[2 * i + 1]) << 8
                        return dtype == .bf16 ? Float(bitPattern: UInt32(bits) << 16) : Float(Float16(bitPattern: bits))
                    }
                }
                values[key] = w
                bytes[key] = encoded
                writer.add(key, dtype: dtype, shape: [64, 64], bytes: encoded)
            }
        }
        // position_ids: I64 [1, 16].
        let ids = (0..<16).flatMap { i in withUnsafeBytes(of: Int64(i * 3 - 7).littleEndian, Array.init) }
        writer.add("embeddings.position_ids", dtype: .i64, shape: [1, 16], bytes: ids)
        bytes["embeddings.position_ids"] = ids
        let bias = FloatNarrowing.bytes(random.floats(64), as: .f32)
        writer.add("encoder.layer.0.attention.self.query.bias", dtype: .f32, shape: [64], bytes: bias)
        bytes["encoder.layer.0.attention.self.query.bias"] = bias
        try writer.write(to: sandbox.path(name))
        return (values, bytes)
    }

    /// |got − want| ≤ u·|want| + 1e-6·max|want| elementwise, u from the dtype's rounding.
    private func assertClose(_ got: [Float], _ want: [Double], dtype: DType, slack: Double = 1,
                             _ message: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(got.count, want.count, message, file: file, line: line)
        let u: Double = switch dtype {
        case .bf16: 0x1p-8
        case .f16: 0x1p-10
        default: 1e-5
        }
        let scale = maxFailingOnNaN(want.map(abs))
        let worst = maxFailingOnNaN(zip(got, want).map { g, w in
            abs(Double(g) - w) - (slack * u * abs(w) + 1e-6 * scale + (dtype == .f32 ? 1e-5 * scale : 0))
        })
        XCTAssertLessThanOrEqual(worst, 0, "\(message) (\(dtype.rawValue))", file: file, line: line)
    }

    func testMergeAndUnmerge() throws {
        let spec = Repository.spec("tiny-qv.adapt.yaml")
        let checked = try SpecLoader.load(path: spec)
        let tensors = try writeRandomAdapter(TinyQv.pairs, checked: checked, to: sandbox.path("adapter.safetensors"),
                                             seed: 41, bound: 0.2)
        let (baseValues, baseBytes) = try writeBase("base.safetensors", seed: 42)
        let base = try SafetensorsFile.read(path: sandbox.path("base.safetensors"))

        let merge = try sandbox.adaptc("merge", spec, "--adapter", "adapter.safetensors", "--base", "base.safetensors",
                                       "-o", "merged.safetensors")
        XCTAssertEqual(merge.status, 0, "\(merge)")
        XCTAssertTrue(merge.stderr.isEmpty, "\(merge)")
        let merged = try SafetensorsFile.read(path: sandbox.path("merged.safetensors"))
        XCTAssertEqual(merged.tensors.map(\.name), base.tensors.map(\.name))
        for (key, value) in Self.baseMetadata {
            XCTAssertEqual(merged.metadata[key], value, "metadata \(key) must be kept")
        }

        var deltas: [String: [Double]] = [:]
        for pair in TinyQv.pairs {
            deltas[TinyQv.weightKey(pair.layer, pair.module)] = referenceDelta(pair, tensors: tensors)
        }
        for entry in base.tensors {
            let out = try XCTUnwrap(merged.entry(entry.name))
            XCTAssertEqual(out.dtype, entry.dtype, "dtype of \(entry.name) must be kept")
            XCTAssertEqual(out.shape, entry.shape, entry.name)
            guard let delta = deltas[entry.name] else {
                XCTAssertEqual(try merged.rawBytes(entry.name), baseBytes[entry.name], "\(entry.name) must be byte-identical")
                continue
            }
            let w = baseValues[entry.name]!
            let want = zip(w, delta).map { Double($0) + $1 }
            assertClose(try merged.floats(entry.name), want, dtype: entry.dtype, "merged \(entry.name)")
            // The adapter really changed it (beyond the dtype's rounding).
            XCTAssertNotEqual(try merged.rawBytes(entry.name), baseBytes[entry.name], entry.name)
        }

        let unmerge = try sandbox.adaptc("merge", spec, "--adapter", "adapter.safetensors", "--base", "merged.safetensors",
                                         "-o", "restored.safetensors", "--unmerge")
        XCTAssertEqual(unmerge.status, 0, "\(unmerge)")
        let restored = try SafetensorsFile.read(path: sandbox.path("restored.safetensors"))
        XCTAssertEqual(restored.tensors.map(\.name), base.tensors.map(\.name))
        for (key, value) in Self.baseMetadata { XCTAssertEqual(restored.metadata[key], value, key) }
        for entry in base.tensors {
            let out = try XCTUnwrap(restored.entry(entry.name))
            XCTAssertEqual(out.dtype, entry.dtype, entry.name)
            guard let delta = deltas[entry.name] else {
                XCTAssertEqual(try restored.rawBytes(entry.name), baseBytes[entry.name], entry.name)
                continue
            }
            let w = baseValues[entry.name]!
            // Two roundings in narrow dtypes: allow twice the unit, relative to |W| + |ΔW|.
            let got = try restored.floats(entry.name)
            let bound = zip(w, delta).map { abs(Double($0)) + abs($1) }
            let u: Double = entry.dtype == .bf16 ? 0x1p-8 : entry.dtype == .f16 ? 0x1p-10 : 1e-5
            let scale = maxFailingOnNaN(bound)
            let worst = maxFailingOnNaN(zip(zip(got, w), bound).map { pair, b in
                abs(Double(pair.0) - Double(pair.1)) - (2 * u * b + 1e-6 * scale)
            }, empty: .nan)
            XCTAssertLessThanOrEqual(worst, 0, "unmerged \(entry.name) (\(entry.dtype.rawValue)) ≈ base")
        }
    }

    /// Untargeted tensors are carried through byte for byte even in dtypes adaptc
    /// never computes with; the output is independent of the thread count.
    func testMergeIsDeterministic() throws {
        let spec = Repository.spec("tiny-qv.adapt.yaml")
        let checked = try SpecLoader.load(path: spec)
        _ = try writeRandomAdapter(TinyQv.pairs, checked: checked, to: sandbox.path("adapter.safetensors"), seed: 43)
        _ = try writeBase("base.safetensors", seed: 44)
        let one = try sandbox.adaptc("merge", spec, "--adapter", "adapter.safetensors", "--base", "base.safetensors",
                                     "-o", "m1.safetensors", "--threads", "1")
        let two = try sandbox.adaptc("merge", spec, "--adapter", "adapter.safetensors", "--base", "base.safetensors",
                                     "-o", "m2.safetensors", "--threads", "2")
        XCTAssertEqual(one.status, 0, "\(one)")
        XCTAssertEqual(two.status, 0, "\(two)")
        XCTAssertEqual(try sandbox.bytes("m1.safetensors"), try sandbox.bytes("m2.safetensors"))
    }
}
