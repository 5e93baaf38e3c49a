import AdaptRuntime
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Writes a base checkpoint back out with some weights changed (merge,
/// unmerge, the init residual): the same tensors, dtypes and metadata, each
/// targeted weight replaced by `W + sign·ΔW` (widened to Float, checked
/// finite, narrowed back with round to nearest even). A one-file base gives
/// one file; a sharded base gives a folder with the same shards and its index,
/// each shard written atomically and the index last, so a reader never sees
/// an index that names a shard not yet complete. (A failure in a later shard
/// leaves the earlier ones complete in the folder, but no new index.)
public enum CheckpointRewrite {
    /// Writes ΔW `[out, in]` (scale included) of a targeted weight into `delta`.
    public typealias Delta = (_ key: String, _ pair: PairPlan, _ delta: UnsafeMutableBufferPointer<Float>) throws -> Void

    /// `transposed`: the checkpoint stores weights `[in, out]` (`model.weights.layout: in_out`).
    /// `replacing`: targeted keys whose `delta` is the new weight itself, not a
    /// change to it (LoftQ's quantised base Q).
    public static func write(_ base: BaseCheckpoint, targets: [String: PairPlan], to output: String,
                             action: String, sign: Float, transposed: Bool, threads: Int = 1,
                             replacing: Set<String> = [], delta: Delta) throws {
        // One ΔW buffer and one byte buffer for the largest targeted weight, reused for all.
        let largest = targets.values.map { $0.outFeatures * $0.inFeatures }.max() ?? 0
        let scratch = Scratch(floats: largest)
        let rewrite = Rewrite(targets: targets, action: action, sign: sign, transposed: transposed, threads: threads,
                              replacing: replacing, scratch: scratch)
        guard base.isSharded else {
            try writeShard(base.shards[0].file, to: output, rewrite, delta: delta)
            return
        }
        try OutputFolder.create(output)
        for shard in base.shards {
            try writeShard(shard.file, to: (output as NSString).appendingPathComponent(shard.name), rewrite, delta: delta)
        }
        try AtomicFile.write(base.index!, to: (output as NSString).appendingPathComponent(BaseCheckpoint.indexName))
    }

    private struct Rewrite {
        var targets: [String: PairPlan]
        var action: String
        var sign: Float
        var transposed: Bool
        var threads: Int
        var replacing: Set<String>
        var scratch: Scratch
    }

    private final class Scratch {
        let delta: UnsafeMutableBufferPointer<Float>
        let bytes: UnsafeMutableRawBufferPointer
        /// Untargeted tensors are copied through this with `pread`: sequential
        /// reads with the kernel's readahead, no page faults, nothing mapped.
        let copy: UnsafeMutableRawBufferPointer = .allocate(byteCount: 8 << 20, alignment: 4096)
        init(floats count: Int) {
            delta = .allocate(capacity: count)
            bytes = .allocate(byteCount: 4 * count, alignment: 64)
        }
        deinit {
            delta.deallocate()
            bytes.deallocate()
            copy.deallocate()
        }
    }

    /// Copies a tensor's stored bytes from the file into the writer in chunks.
    private static func copy(_ entry: TensorEntry, of file: SafetensorsFile, descriptor: Int32,
                             into writer: SafetensorsStreamWriter, scratch: Scratch) throws {
        var offset = file.fileOffset(of: entry)
        var left = entry.dataOffsets.count
        if left == 0 {
            try writer.append(entry.name, bytes: UnsafeRawBufferPointer(start: nil, count: 0))
            return
        }
        try writer.appendInPieces(entry.name) { write in
            while left > 0 {
                let n = pread(descriptor, scratch.copy.baseAddress!, min(left, scratch.copy.count), off_t(offset))
                if n < 0, errno == EINTR { continue }
                guard n > 0 else {
                    throw UserError("\(file.path): tensor \"\(entry.name)\": cannot read (\(n == 0 ? "file shrank" : String(cString: strerror(errno))))")
                }
                try write(UnsafeRawBufferPointer(rebasing: scratch.copy[0..<n]))
                offset += n
                left -= n
            }
        }
    }

    /// Streams one file: for each targeted tensor ΔW is materialised into the
    /// one reused buffer and the stored bytes are read, combined and narrowed
    /// in place in one parallel pass (`StoredMerge`), then written; the other
    /// tensors are copied through an 8 MB buffer. Resident memory stays at
    /// about the largest targeted tensor (ΔW in float32 plus its stored bytes)
    /// whatever the checkpoint's size.
    private static func writeShard(_ file: SafetensorsFile, to path: String, _ rewrite: Rewrite, delta materialize: Delta) throws {
        let writer = try SafetensorsStreamWriter(path: path, metadata: file.metadata,
                                                 tensors: file.tensors.map { ($0.name, $0.dtype, $0.shape) })
        let descriptor = open(file.path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw UserError("\(file.path): cannot open: \(String(cString: strerror(errno)))") }
        defer { close(descriptor) }
        let scratch = rewrite.scratch
        for entry in file.tensors {
            defer { file.releasePages(entry) }
            guard let pair = rewrite.targets[entry.name] else {
                try copy(entry, of: file, descriptor: descriptor, into: writer, scratch: scratch)
                continue
            }
            let count = entry.elementCount
            let delta = UnsafeMutableBufferPointer(rebasing: scratch.delta[0..<count])
            try materialize(entry.name, pair, delta)
            let bytes = UnsafeMutableRawBufferPointer(rebasing: scratch.bytes[0..<(count * entry.dtype.itemSize)])
            let shape = rewrite.transposed ? (out: pair.outFeatures, in: pair.inFeatures) : nil
            let replaced = rewrite.replacing.contains(entry.name)
            if let bad = try StoredMerge.apply(entry, of: file, descriptor: descriptor, delta: UnsafeBufferPointer(delta),
                                               sign: replaced ? 1 : rewrite.sign, keep: replaced ? 0 : 1,
                                               transposed: shape, into: bytes, threads: rewrite.threads) {
                // An overflow would write Inf, which no reader (adaptc included) accepts back.
                throw UserError("\(file.path): tensor \"\(entry.name)\": \(rewrite.action) overflows \(entry.dtype.rawValue) at element \(bad.index) (\(bad.value))")
            }
            try writer.append(entry.name, bytes: UnsafeRawBufferPointer(bytes))
        }
        try writer.commit()
    }
}
