import AdaptcCore
import AdaptRuntime
import FuzzSupport

/// A sharded base folder whose shards are fixed; the input is
/// model.safetensors.index.json. Two shards (F32 and BF16, as Hub checkpoints
/// mix them), plus what a hostile index may point at instead: a folder, a file
/// that is not safetensors, and an empty file.
private let scratch: Scratch = {
    let scratch = Scratch("index")
    var first = SafetensorsWriter(metadata: ["format": "pt"]), second = SafetensorsWriter(metadata: ["format": "pt"])
    first.add("model.layers.0.self_attn.q_proj.weight", floats: (0..<16).map(Float.init), shape: [4, 4])
    first.add("model.layers.0.self_attn.v_proj.weight", floats: (0..<16).map { -Float($0) }, shape: [4, 4])
    second.add("model.layers.1.self_attn.q_proj.weight", dtype: .bf16, shape: [4, 4], bytes: [UInt8](repeating: 0x3f, count: 32))
    second.add("model.embed_tokens.weight", dtype: .i64, shape: [2], bytes: [UInt8](repeating: 0, count: 16))
    scratch.write("model-00001-of-00002.safetensors", try! first.encoded())
    scratch.write("model-00002-of-00002.safetensors", try! second.encoded())
    scratch.makeFolder("sub")
    scratch.write("notes.txt", Array("not a checkpoint\n".utf8))
    scratch.write("empty.safetensors", [])
    // The harness must reach the accepting path: the fixture's own index opens.
    scratch.write(BaseCheckpoint.indexName, Array("""
        {"weight_map": {"model.layers.0.self_attn.q_proj.weight": "model-00001-of-00002.safetensors",
        "model.layers.0.self_attn.v_proj.weight": "model-00001-of-00002.safetensors",
        "model.layers.1.self_attn.q_proj.weight": "model-00002-of-00002.safetensors",
        "model.embed_tokens.weight": "model-00002-of-00002.safetensors"}}
        """.utf8))
    do {
        let count = try BaseCheckpoint.open(scratch.folder).tensorCount
        precondition(count == 4, "the fixture's own index opens with \(count) tensors")
    } catch {
        preconditionFailure("the fixture's own index does not open: \(error)")
    }
    return scratch
}()

/// One input: open the folder as `--base` does (index parsed, every shard named
/// opened and checked against it). Errors are fine; crashes, hangs, sanitizer
/// reports are bugs, and so is an accepted index that disagrees with its shards:
/// every tensor of every shard must be found where the index puts it.
func fuzzShardIndex(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard let data else { return 0 }
    let bytes = UnsafeBufferPointer(start: data, count: size)
    scratch.write(BaseCheckpoint.indexName, bytes)
    guard let base = try? BaseCheckpoint.open(scratch.folder) else { return 0 }
    precondition(base.isSharded && base.index == Array(bytes), "the index's bytes are not kept as read")
    var count = 0
    for shard in base.shards {
        for entry in shard.file.tensors {
            guard let (file, found) = base.locate(entry.name) else { preconditionFailure("\(entry.name) is in \(shard.name) but not found") }
            precondition(file.path == shard.file.path && found == entry, "\(entry.name) found in the wrong shard")
            if entry.dtype.isFloatingComputable {
                precondition((try? file.floats(entry.name))?.count == entry.elementCount, "\(entry.name) does not read")
            }
            count += 1
        }
    }
    precondition(count == base.tensorCount, "the index names \(base.tensorCount) tensors, the shards hold \(count)")
    return 0
}

runFuzzer(fuzzShardIndex)
