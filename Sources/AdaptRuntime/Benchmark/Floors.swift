import CKernels

/// The two floors of a benchmark case (DESIGN §8), measured on the threads the
/// case runs on: the *memory floor*, one TBB-parallel pass over buffers of the
/// bytes the case must move (inputs read once, accumulated outputs read and
/// written once, fresh outputs written once), and the *compute floor*, its
/// FLOPs as fused multiply-adds on registers alone. A case's floor is the
/// larger of the two. `Tools/bench` times both alternately with the case itself,
/// so drift on a shared machine hits them alike; nothing here reads a clock.
public final class StreamingPass {
    /// What one block of a buffer does in the pass.
    private enum Access { case read, update, write }
    private struct Block {
        let access: Access
        let start: UnsafeMutablePointer<Float>
        let count: Int
    }

    /// Floats per block: 64 KB, small enough for TBB to balance a few MB
    /// between threads, large enough that a call costs nothing beside it.
    public static let blockFloats = 16_384

    public let threads: Int
    /// Bytes one pass moves: 4 per input float, 8 per accumulated float (read
    /// and written), 4 per written float.
    public let bytes: Int
    private let blocks: [Block]
    /// One partial sum per block, so threads never share a slot and the total
    /// is added in block order (the same for any thread count).
    private let partials: UnsafeMutableBufferPointer<Double>
    private var owned: [UnsafeMutableBufferPointer<Float>] = []

    /// A pass over the caller's buffers (kept alive by the caller): `inputs`
    /// read, `accumulated` read and written (`y +=`), `written` written.
    public init(reading inputs: [UnsafeBufferPointer<Float>], accumulating accumulated: [UnsafeMutableBufferPointer<Float>] = [],
                writing written: [UnsafeMutableBufferPointer<Float>] = [], threads: Int) {
        self.threads = threads
        var blocks: [Block] = []
        func cut(_ buffer: UnsafeMutableBufferPointer<Float>, _ access: Access) {
            guard let base = buffer.baseAddress else { return }
            for offset in stride(from: 0, to: buffer.count, by: Self.blockFloats) {
                blocks.append(Block(access: access, start: base + offset, count: min(Self.blockFloats, buffer.count - offset)))
            }
        }
        // The pass never writes an input: the mutable view only shares the block list.
        inputs.forEach { cut(UnsafeMutableBufferPointer(mutating: $0), .read) }
        accumulated.forEach { cut($0, .update) }
        written.forEach { cut($0, .write) }
        self.blocks = blocks
        bytes = 4 * (inputs.reduce(0) { $0 + $1.count } + 2 * accumulated.reduce(0) { $0 + $1.count }
            + written.reduce(0) { $0 + $1.count })
        partials = .allocate(capacity: max(blocks.count, 1))
        partials.initialize(repeating: 0)
    }

    /// A pass over buffers of its own with these many floats each, allocated
    /// once and touched once here (a VM's first touch of a page is slow: the
    /// timed passes then run on warm pages, as the case's reused buffers do).
    public convenience init(readingFloats inputs: [Int], accumulatingFloats accumulated: [Int] = [],
                            writingFloats written: [Int] = [], threads: Int) {
        func allocate(_ counts: [Int]) -> [UnsafeMutableBufferPointer<Float>] {
            counts.map { count in
                let buffer = UnsafeMutableBufferPointer<Float>.allocate(capacity: max(count, 0))
                buffer.initialize(repeating: 1)
                return buffer
            }
        }
        let ins = allocate(inputs), accs = allocate(accumulated), outs = allocate(written)
        self.init(reading: ins.map { UnsafeBufferPointer($0) }, accumulating: accs, writing: outs, threads: threads)
        owned = ins + accs + outs
    }

    deinit {
        partials.deallocate()
        owned.forEach { $0.deallocate() }
    }

    /// One pass: every accumulated float gets `delta` added, every written float
    /// becomes `delta`; returns the sum of every input float.
    @discardableResult
    public func run(delta: Float = 1) -> Double {
        let blocks = self.blocks, partials = self.partials
        Parallel.forEach(blocks.count, threads: threads) { range in
            for index in range {
                let block = blocks[index]
                switch block.access {
                case .read: partials[index] = Double(adaptc_stream_read(block.start, block.count))
                case .update: adaptc_stream_update(block.start, block.count, delta); partials[index] = 0
                case .write: adaptc_stream_write(block.start, block.count, delta); partials[index] = 0
                }
            }
        }
        return partials.reduce(0, +)
    }
}

/// The compute floor's loop: independent FMA chains on registers (see
/// `adaptc_fma_loop`), spread over TBB in equal chunks.
public enum FMALoop {
    /// Chains (vector lanes) one step of the C loop advances at once.
    public static var width: Int { Int(adaptc_fma_width()) }

    /// At least `flops` FLOPs in `chunks` equal calls of the loop (TBB
    /// balances them; by default 4 a thread), each chain stepping s ← s·a + b
    /// from 0. Returns the FLOPs done (rounded up to whole steps) and the sum
    /// of all chains' final values, added in chunk order.
    public static func run(flops: Int, threads: Int, chunks: Int? = nil, a: Float = 0.5, b: Float = 1) -> (flops: Int, sum: Double) {
        let chunks = max(chunks ?? 4 * (threads > 0 ? threads : Parallel.defaultThreads), 1)
        let perStep = 2 * width
        let steps = max((flops + perStep * chunks - 1) / (perStep * chunks), 0)
        var sums = [Double](repeating: 0, count: chunks)
        sums.withUnsafeMutableBufferPointer { sums in
            Parallel.forEach(chunks, threads: threads) { range in
                for chunk in range { sums[chunk] = adaptc_fma_loop(steps, a, b) }
            }
        }
        return (steps * perStep * chunks, sums.reduce(0, +))
    }
}
