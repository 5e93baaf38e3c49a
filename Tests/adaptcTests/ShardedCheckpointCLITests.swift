import AdaptRuntime
import AdaptcCore
import AdaptTestSupport
import Foundation
import XCTest

/// `--base` as a folder in Hugging Face's sharded layout: merge and the init
/// residual write the same shards and index; hostile indexes are one line.
final class ShardedCheckpointCLITests: XCTestCase {
    private var sandbox: CLISandbox!

    override func setUpWithError() throws { sandbox = try CLISandbox() }
    override func tearDown() { sandbox?.remove() }

    /// tiny-qv's q/k/v weights (layers 0–1 in shard 1, 2–3 in shard 2, BF16 in
    /// shard 2) plus an I64 table, as one file and as a sharded folder.
    private func writeBase(seed: UInt64 = 7) throws -> [String: String] {
        var random = TestRandom(seed: seed)
        var single = SafetensorsWriter(metadata: ["format": "pt"])
        var shards = [SafetensorsWriter(metadata: ["format": "pt"]), SafetensorsWriter(metadata: ["format": "pt"])]
        var map: [String: String] = [:]
        for layer in TinyQv.layers {
            for module in ["attention.self.query", "attention.self.key", "attention.self.value"] {
                let key = TinyQv.weightKey(layer, module), shard = layer < 2 ? 0 : 1
                let dtype: DType = shard == 1 ? .bf16 : .f32
                let bytes = FloatNarrowing.bytes(random.floats(64 * 64, bound: 0.1), as: dtype)
                single.add(key, dtype: dtype, shape: [64, 64], bytes: bytes)
                shards[shard].add(key, dtype: dtype, shape: [64, 64], bytes: bytes)
                map[key] = "model-0000\(shard + 1)-of-00002.safetensors"
            }
        }
        let ids = (0..<8).flatMap { withUnsafeBytes(of: Int64($0).littleEndian, Array.init) }
        single.add("embeddings.position_ids", dtype: .i64, shape: [8], bytes: ids)
        shards[0].add("embeddings.position_ids", dtype: .i64, shape: [8], bytes: ids)
        map["embeddings.position_ids"] = "model-00001-of-00002.safetensors"
        try single.write(to: sandbox.path("base.safetensors"))
        try FileManager.default.createDirectory(atPath: sandbox.path("sharded"), withIntermediateDirectories: true)
        for (i, shard) in shards.enumerated() { try shard.write(to: sandbox.path("sharded/model-0000\(i + 1)-of-00002.safetensors")) }
        try writeIndex(map, to: "sharded")
        return map
    }

    private func writeIndex(_ map: [String: String], to folder: String, raw: String? = nil) throws {
        let text = try raw ?? String(decoding: JSONSerialization.data(
            withJSONObject: ["metadata": ["total_size": 1], "weight_map": map], options: [.sortedKeys, .prettyPrinted]), as: UTF8.self)
        try sandbox.write(text, to: "\(folder)/model.safetensors.index.json")
    }

    func testShardedMergeMatchesOneFileMerge() throws {
        let spec = Repository.spec("tiny-qv.adapt.yaml")
        _ = try writeRandomAdapter(TinyQv.pairs, checked: try SpecLoader.load(path: spec), to: sandbox.path("adapter.safetensors"), seed: 3, bound: 0.2)
        let map = try writeBase()
        let one = try sandbox.adaptc("merge", spec, "--adapter", "adapter.safetensors", "--base", "base.safetensors", "-o", "merged.safetensors")
        XCTAssertEqual(one.status, 0, "\(one)")
        let many = try sandbox.adaptc("merge", spec, "--adapter", "adapter.safetensors", "--base", "sharded", "-o", "merged")
        XCTAssertEqual(many.status, 0, "\(many)")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: sandbox.path("merged")).sorted(),
                       try FileManager.default.contentsOfDirectory(atPath: sandbox.path("sharded")).sorted())
        XCTAssertEqual(try sandbox.bytes("merged/model.safetensors.index.json"), try sandbox.bytes("sharded/model.safetensors.index.json"))
        let reference = try SafetensorsFile.read(path: sandbox.path("merged.safetensors"))
        for (key, shard) in map {
            let merged = try SafetensorsFile.read(path: sandbox.path("merged/\(shard)"))
            let input = try SafetensorsFile.read(path: sandbox.path("sharded/\(shard)"))
            XCTAssertEqual(merged.tensors.map(\.name), input.tensors.map(\.name), shard)
            XCTAssertEqual(merged.entry(key)?.dtype, input.entry(key)?.dtype, key)
            XCTAssertEqual(try merged.rawBytes(key), try reference.rawBytes(key), key)
            if !key.contains("query") && !key.contains("value") {
                XCTAssertEqual(try merged.rawBytes(key), try input.rawBytes(key), "untargeted \(key) byte for byte")
            } else {
                XCTAssertNotEqual(try merged.rawBytes(key), try input.rawBytes(key), "targeted \(key) changed")
            }
        }
    }

    func testHostileIndexesFailWithOneLineAndWriteNothing() throws {
        let spec = Repository.spec("tiny-qv.adapt.yaml")
        _ = try writeRandomAdapter(TinyQv.pairs, checked: try SpecLoader.load(path: spec), to: sandbox.path("adapter.safetensors"), seed: 3)
        var map = try writeBase()
        let shard1 = "model-00001-of-00002.safetensors", shard2 = "model-00002-of-00002.safetensors"
        func folder(_ name: String, map: [String: String]? = nil, raw: String? = nil, notSafetensors: Bool = false) throws {
            for shard in [shard1, shard2] {
                try FileManager.default.createDirectory(atPath: sandbox.path(name), withIntermediateDirectories: true)
                try FileManager.default.copyItem(atPath: sandbox.path("sharded/\(shard)"), toPath: sandbox.path("\(name)/\(shard)"))
            }
            if notSafetensors { try sandbox.write("not a tensor file", to: "\(name)/\(shard2)") }
            if let map { try writeIndex(map, to: name) } else { try writeIndex([:], to: name, raw: raw) }
        }
        var missing = map
        missing["encoder.layer.0.attention.self.key.weight"] = "model-00003-of-00002.safetensors"
        try folder("missing", map: missing)
        try folder("twice", raw: #"{"weight_map": {"embeddings.position_ids": "\#(shard1)", "embeddings.position_ids": "\#(shard2)"}}"#)
        try folder("garbage", map: map, notSafetensors: true)
        var escape = map
        escape["embeddings.position_ids"] = "../base.safetensors"
        try folder("escape", map: escape)
        var moved = map
        moved["embeddings.position_ids"] = shard2
        try folder("moved", map: moved)
        map.removeValue(forKey: "embeddings.position_ids")
        try folder("unlisted", map: map)
        try folder("nojson", raw: "{\"weight_map\": ")
        try FileManager.default.createDirectory(atPath: sandbox.path("noindex"), withIntermediateDirectories: true)

        let before = sandbox.listing()
        let cases: [(String, String)] = [
            ("missing", "shard \"model-00003-of-00002.safetensors\" (of tensor \"encoder.layer.0.attention.self.key.weight\") does not exist"),
            ("twice", "tensor \"embeddings.position_ids\" appears twice"),
            ("garbage", "\(shard2)"),
            ("escape", "must be a file name inside the folder"),
            ("moved", "tensor \"embeddings.position_ids\" is here, but model.safetensors.index.json places it in \(shard2)"),
            ("unlisted", "tensor \"embeddings.position_ids\" is not in model.safetensors.index.json"),
            ("nojson", "not valid JSON"),
            ("noindex", "model.safetensors.index.json"),
        ]
        for (name, needle) in cases {
            let run = try sandbox.adaptc("merge", spec, "--adapter", "adapter.safetensors", "--base", name, "-o", "out")
            XCTAssertEqual(run.status, 1, "\(name): \(run)")
            XCTAssertEqual(run.stderrLines.count, 1, "\(name): \(run)")
            XCTAssertTrue(run.stderr.hasPrefix("adaptc: error: ") && run.stderr.contains(needle), "\(name): \(run)")
            XCTAssertEqual(sandbox.listing(), before, "\(name): \(run)")
        }
    }

    /// init --residual on a sharded base: a folder like the base, W − s·B·A in it.
    func testResidualOfShardedBase() throws {
        _ = try writeBase()
        try sandbox.write("""
            adaptc: 1
            name: ShardedPissa
            model:
              layers: 4
              modules: {attention.self.query: [64, 64], attention.self.value: [64, 64]}
              weights: {key: "encoder.layer.{layer}.{module}.weight"}
            adapters:
              - name: attn
                structure: lora
                modules: [attention.self.query, attention.self.value]
                rank: 4
                alpha: 4
                init: {method: pissa, svd: exact}
            """, to: "p.adapt.yaml")
        let one = try sandbox.adaptc("init", "p.adapt.yaml", "--base", "base.safetensors", "-o", "a1.safetensors", "--residual", "r.safetensors")
        XCTAssertEqual(one.status, 0, "\(one)")
        let many = try sandbox.adaptc("init", "p.adapt.yaml", "--base", "sharded", "-o", "a2.safetensors", "--residual", "r")
        XCTAssertEqual(many.status, 0, "\(many)")
        XCTAssertEqual(try sandbox.bytes("a1.safetensors"), try sandbox.bytes("a2.safetensors"))
        let reference = try SafetensorsFile.read(path: sandbox.path("r.safetensors"))
        var seen = 0
        for shard in ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"] {
            let file = try SafetensorsFile.read(path: sandbox.path("r/\(shard)"))
            for entry in file.tensors { XCTAssertEqual(try file.rawBytes(entry.name), try reference.rawBytes(entry.name), entry.name); seen += 1 }
        }
        XCTAssertEqual(seen, reference.tensors.count)
        XCTAssertTrue(sandbox.exists("r/model.safetensors.index.json"))
    }
}
