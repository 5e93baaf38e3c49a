import AdaptRuntime
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// One targeted weight of a checkpoint rewrite, in a single pass over its
/// stored bytes: each chunk is read (`pread`) straight into the output
/// buffer, widened, checked finite, has `sign·ΔW` added and is narrowed back
/// in place (round to nearest even) — no float32 copy of W, no second pass.
/// Chunks run in parallel (TBB). `transposedRows`: the checkpoint stores the
/// weight `[in, out]` (PEFT's `fan_in_fan_out`) while ΔW is `[out, in]`.
enum StoredMerge {
    /// An element and its value (first non-finite base value, first sum that
    /// does not fit the dtype).
    struct Element {
        var index: Int
        var value: Float
    }

    /// Elements per chunk: 512 KiB of BF16, small enough to stay in cache
    /// between the read and the write-back.
    static let chunk = 1 << 18

    /// Fills `bytes` (the entry's stored size) with `keep·W + sign·delta`: the
    /// stored weight W plus or minus ΔW (keep 1), or `delta` itself replacing W
    /// (keep 0, sign 1: LoftQ's quantised base). Throws the file's read error or a non-finite base value
    /// (naming file and tensor); returns the first element whose sum does not
    /// fit the dtype, if any.
    static func apply(_ entry: TensorEntry, of file: SafetensorsFile, descriptor: Int32,
                      delta: UnsafeBufferPointer<Float>, sign: Float, keep: Float = 1, transposed: (out: Int, in: Int)?,
                      into bytes: UnsafeMutableRawBufferPointer, threads: Int) throws -> Element? {
        let count = entry.elementCount, size = entry.dtype.itemSize
        precondition(delta.count >= count && bytes.count == count * size)
        let start = file.fileOffset(of: entry)
        let chunks = (count + chunk - 1) / chunk
        var failures = [String?](repeating: nil, count: chunks)
        var badInput = [Element?](repeating: nil, count: chunks)
        var overflow = [Element?](repeating: nil, count: chunks)
        failures.withUnsafeMutableBufferPointer { failures in
            badInput.withUnsafeMutableBufferPointer { badInput in
                overflow.withUnsafeMutableBufferPointer { overflow in
                    Parallel.forEach(chunks, threads: threads) { range in
                        for c in range {
                            let lower = c * chunk, upper = min(count, lower + chunk)
                            let raw = UnsafeMutableRawBufferPointer(rebasing: bytes[(lower * size)..<(upper * size)])
                            if let failure = read(descriptor, at: start + lower * size, into: raw) {
                                failures[c] = failure
                                continue
                            }
                            if entry.dtype == .bf16, transposed == nil {
                                let flagged = combineBF16(raw, delta: delta.baseAddress! + lower, sign: sign, keep: keep,
                                                          count: upper - lower)
                                if !flagged { continue }
                                // Something was not finite: read the chunk again (it was
                                // overwritten) and find which element, one by one.
                                if let failure = read(descriptor, at: start + lower * size, into: raw) {
                                    failures[c] = failure
                                    continue
                                }
                            }
                            (badInput[c], overflow[c]) = combine(raw, dtype: entry.dtype, lower: lower, upper: upper,
                                                                 delta: delta, sign: sign, keep: keep, transposed: transposed)
                        }
                    }
                }
            }
        }
        if let failure = failures.first(where: { $0 != nil }) {
            throw UserError("\(file.path): tensor \"\(entry.name)\": cannot read (\(failure!))")
        }
        if let bad = badInput.lazy.compactMap({ $0 }).first {
            throw UserError("\(file.path): tensor \"\(entry.name)\" contains \(bad.value.isNaN ? "NaN" : "Inf") (element \(bad.index))")
        }
        return overflow.lazy.compactMap { $0 }.first
    }

    /// `pread` until full; a message on failure.
    private static func read(_ descriptor: Int32, at offset: Int, into buffer: UnsafeMutableRawBufferPointer) -> String? {
        var done = 0
        while done < buffer.count {
            let n = pread(descriptor, buffer.baseAddress! + done, buffer.count - done, off_t(offset + done))
            if n < 0, errno == EINTR { continue }
            guard n > 0 else { return n == 0 ? "file shrank" : String(cString: strerror(errno)) }
            done += n
        }
        return nil
    }

    /// The common case (BF16, `[out, in]`) as one branch-free loop the
    /// compiler vectorises: widen, add, round to nearest even, and only flag
    /// whether any input or output was non-finite (`true`), after which the
    /// caller reads the chunk again and names the element with `combine`.
    private static func combineBF16(_ raw: UnsafeMutableRawBufferPointer, delta: UnsafePointer<Float>, sign: Float,
                                    keep: Float, count: Int) -> Bool {
        let halves = raw.baseAddress!.assumingMemoryBound(to: UInt16.self)
        var flags: UInt16 = 0
        for k in 0..<count {
            let bits = UInt16(littleEndian: halves[k])
            flags |= (bits & 0x7F80) == 0x7F80 ? 1 : 0
            let sum = (keep * Float(bitPattern: UInt32(bits) << 16) + sign * delta[k]).bitPattern
            let out = UInt16(truncatingIfNeeded: (sum &+ 0x7FFF &+ ((sum >> 16) & 1)) >> 16)
            flags |= (out & 0x7F80) == 0x7F80 ? 1 : 0
            halves[k] = out.littleEndian
        }
        return flags != 0
    }

    /// Elements lower..<upper: stored → Float, keep·W + sign·ΔW, → stored, in place.
    private static func combine(_ raw: UnsafeMutableRawBufferPointer, dtype: DType, lower: Int, upper: Int,
                                delta: UnsafeBufferPointer<Float>, sign: Float, keep: Float,
                                transposed: (out: Int, in: Int)?) -> (badInput: Element?, overflow: Element?) {
        var badInput: Element?, overflow: Element?
        @inline(__always) func deltaAt(_ i: Int) -> Float {
            guard let t = transposed else { return delta[i] }
            return delta[(i % t.out) * t.in + i / t.out]
        }
        switch dtype {
        case .bf16:
            let halves = raw.bindMemory(to: UInt16.self)
            for k in 0..<(upper - lower) {
                let bits = UInt16(littleEndian: halves[k])
                let w = Float(bitPattern: UInt32(bits) << 16)
                if bits & 0x7F80 == 0x7F80, badInput == nil { badInput = Element(index: lower + k, value: w) }
                let sum = keep * w + sign * deltaAt(lower + k)
                let out = FloatNarrowing.bfloat16Bits(sum)
                if out & 0x7F80 == 0x7F80, overflow == nil { overflow = Element(index: lower + k, value: sum) }
                halves[k] = out.littleEndian
            }
        case .f16:
            let halves = raw.bindMemory(to: UInt16.self)
            for k in 0..<(upper - lower) {
                let w = Float(Float16(bitPattern: UInt16(littleEndian: halves[k])))
                if !w.isFinite, badInput == nil { badInput = Element(index: lower + k, value: w) }
                let sum = keep * w + sign * deltaAt(lower + k)
                let out = Float16(sum)
                if !out.isFinite, overflow == nil { overflow = Element(index: lower + k, value: sum) }
                halves[k] = out.bitPattern.littleEndian
            }
        default:
            let words = raw.bindMemory(to: UInt32.self)
            for k in 0..<(upper - lower) {
                let w = Float(bitPattern: UInt32(littleEndian: words[k]))
                if !w.isFinite, badInput == nil { badInput = Element(index: lower + k, value: w) }
                let sum = keep * w + sign * deltaAt(lower + k)
                if !sum.isFinite, overflow == nil { overflow = Element(index: lower + k, value: sum) }
                words[k] = sum.bitPattern.littleEndian
            }
        }
        return (badInput, overflow)
    }
}
