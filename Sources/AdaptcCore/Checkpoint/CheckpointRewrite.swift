import AdaptRuntime
import Foundation
#if canImport(Glibc)
import Glibc
#endif

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
                             action: String, threads: Int = 1, transform: Transform) throws {
        // One scratch buffer for the largest targeted weight, reused for all.
        let largest = targets.values.map { $0.outFeatures * $0.inFeatures }.max() ?? 0
        let scratch = Scratch(floats: largest)
        guard base.isSharded else {
            try writeShard(base.shards[0].file, targets: targets, to: output, action: action, threads: threads,
                           scratch: scratch, transform: transform)
            return
        }
        try CompileCommand.createFolder(output)
        for shard in base.shards {
            let path = (output as NSString).appendingPathComponent(shard.name)
            try writeShard(shard.file, targets: targets, to: path, action: action, threads: threads,
                           scratch: scratch, transform: transform)
        }
        try AtomicFile.write(base.index!, to: (output as NSString).appendingPathComponent(BaseCheckpoint.indexName))
    }

    private final class Scratch {
        let floats: UnsafeMutableBufferPointer<Float>
        let bytes: UnsafeMutableRawBufferPointer
        /// Untargeted tensors are copied through this with `pread`: sequential
        /// reads with the kernel's readahead, no page faults, nothing mapped.
        let copy: UnsafeMutableRawBufferPointer = .allocate(byteCount: 8 << 20, alignment: 4096)
        init(floats count: Int) {
            floats = .allocate(capacity: count)
            bytes = .allocate(byteCount: 4 * count, alignment: 16)
        }
        deinit {
            floats.deallocate()
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

    /// Streams one file: each targeted tensor is read (`pread`) into the one
    /// scratch buffer, transformed and narrowed there, and written; the others
    /// are copied through an 8 MB buffer. Resident memory stays at about the
    /// largest targeted tensor (as float32) whatever the checkpoint's size.
    private static func writeShard(_ file: SafetensorsFile, targets: [String: PairPlan], to path: String,
                                   action: String, threads: Int, scratch: Scratch, transform: Transform) throws {
        let writer = try SafetensorsStreamWriter(path: path, metadata: file.metadata,
                                                 tensors: file.tensors.map { ($0.name, $0.dtype, $0.shape) })
        let descriptor = open(file.path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw UserError("\(file.path): cannot open: \(String(cString: strerror(errno)))") }
        defer { close(descriptor) }
        for entry in file.tensors {
            defer { file.releasePages(entry) }
            guard let pair = targets[entry.name] else {
                try copy(entry, of: file, descriptor: descriptor, into: writer, scratch: scratch)
                continue
            }
            let count = entry.elementCount
            let weight = UnsafeMutableBufferPointer(rebasing: scratch.floats[0..<count])
            try file.floats(entry, into: weight, threads: threads)
            try transform(entry.name, pair, weight)
            let bytes = UnsafeMutableRawBufferPointer(rebasing: scratch.bytes[0..<(count * entry.dtype.itemSize)])
            if let bad = narrow(UnsafeBufferPointer(weight), as: entry.dtype, into: bytes, threads: threads) {
                // An overflow would write Inf, which no reader (adaptc included) accepts back.
                throw UserError("\(file.path): tensor \"\(entry.name)\": \(action) overflows \(entry.dtype.rawValue) at element \(bad) (\(weight[bad]))")
            }
            try writer.append(entry.name, bytes: UnsafeRawBufferPointer(bytes))
        }
        try writer.commit()
    }

    /// `FloatNarrowing.narrow` in chunks on up to `threads` threads; the first bad index.
    private static func narrow(_ values: UnsafeBufferPointer<Float>, as dtype: DType,
                               into bytes: UnsafeMutableRawBufferPointer, threads: Int) -> Int? {
        let chunk = 1 << 18
        let chunks = (values.count + chunk - 1) / chunk
        var firstBad = [Int?](repeating: nil, count: chunks)
        firstBad.withUnsafeMutableBufferPointer { firstBad in
            Parallel.forEach(chunks, threads: threads) { range in
                for c in range {
                    let lower = c * chunk, upper = min(values.count, lower + chunk)
                    let size = dtype.itemSize
                    firstBad[c] = FloatNarrowing.narrow(
                        UnsafeBufferPointer(rebasing: values[lower..<upper]), as: dtype,
                        into: UnsafeMutableRawBufferPointer(rebasing: bytes[(lower * size)..<(upper * size)])
                    ).map { $0 + lower }
                }
            }
        }
        return firstBad.lazy.compactMap { $0 }.first
    }
}
