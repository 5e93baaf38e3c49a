import AdaptRuntime
import Foundation

/// Writes a base checkpoint back out with some weights changed (merge,
/// unmerge, the init residual): the same tensors, dtypes and metadata, each
/// targeted weight widened to Float, transformed, checked finite and narrowed
/// back (round to nearest even). A one-file base gives one file; a sharded
/// base gives a folder with the same shards and its index, each shard written
/// atomically and the index last, so a reader never sees an index that names
/// a shard not yet complete. (A failure in a later shard leaves the earlier
/// ones complete in the folder, but no new index.)
public enum CheckpointRewrite {
    public typealias Transform = (_ key: String, _ pair: PairPlan, _ weight: UnsafeMutableBufferPointer<Float>) throws -> Void

    public static func write(_ base: BaseCheckpoint, targets: [String: PairPlan], to output: String,
                             action: String, transform: Transform) throws {
        guard base.isSharded else {
            try writeShard(base.shards[0].file, targets: targets, to: output, action: action, transform: transform)
            return
        }
        try CompileCommand.createFolder(output)
        for shard in base.shards {
            let path = (output as NSString).appendingPathComponent(shard.name)
            try writeShard(shard.file, targets: targets, to: path, action: action, transform: transform)
        }
        try AtomicFile.write(base.index!, to: (output as NSString).appendingPathComponent(BaseCheckpoint.indexName))
    }

    /// Streams one file: each tensor is read (`pread`, into a buffer of its
    /// size), written, and its buffer freed before the next, so resident memory
    /// stays at about one tensor (as float32) whatever the checkpoint's size.
    private static func writeShard(_ file: SafetensorsFile, targets: [String: PairPlan], to path: String,
                                   action: String, transform: Transform) throws {
        let writer = try SafetensorsStreamWriter(path: path, metadata: file.metadata,
                                                 tensors: file.tensors.map { ($0.name, $0.dtype, $0.shape) })
        for entry in file.tensors {
            defer { file.releasePages(entry) }
            guard let pair = targets[entry.name] else {
                try file.withRawBytes(entry) { try writer.append(entry.name, bytes: $0) }
                continue
            }
            var weight = try file.floats(entry.name)
            try weight.withUnsafeMutableBufferPointer { try transform(entry.name, pair, $0) }
            try checkFinite(weight, entry: entry, file: file.path, action: action)
            try writer.append(entry.name, bytes: FloatNarrowing.bytes(weight, as: entry.dtype))
        }
        try writer.commit()
    }

    /// An overflow would write Inf, which no reader (adaptc included) accepts back.
    static func checkFinite(_ weight: [Float], entry: TensorEntry, file: String, action: String) throws {
        for i in weight.indices where !FloatNarrowing.isFinite(weight[i], as: entry.dtype) {
            throw UserError("\(file): tensor \"\(entry.name)\": \(action) overflows \(entry.dtype.rawValue) at element \(i) (\(weight[i]))")
        }
    }
}
