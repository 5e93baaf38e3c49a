import AdaptRuntime
import Foundation

/// The floors of one benchmark case (DESIGN §8): its *memory floor*, a
/// TBB-parallel streaming pass over buffers of the bytes the case must move
/// (inputs read once, accumulated outputs read and written once, fresh outputs
/// written once), and its *compute floor*, its FLOPs at the rate the FMA-only
/// register loop reaches, both on the case's threads. The floor is the larger.
///
/// Where the case has buffers of its own (x, y), the pass runs over those very
/// buffers (`sharing`), so it finds them where the case leaves them — in the
/// last-level cache or not — and the two do not evict each other between the
/// alternating repeats. The rest (parameters, say) is buffers of the pass's own
/// of the same sizes, allocated and touched once. A buffer listed k times is
/// moved k times (a case that reuses one `y` for 96 pairs writes it 96 times).
///
/// Both variants are timed by `Bench.timeWithFloors`, alternating with the case.
final class CaseFloor {
    let pass: StreamingPass
    let flops: Int
    let threads: Int
    /// Bytes the case must move: what the pass moves.
    var bytes: Int { pass.bytes }
    /// Seconds, set by `Bench.timeWithFloors`.
    private(set) var memorySeconds = Double.nan, computeSeconds = Double.nan
    /// The larger floor, and which one it is.
    var seconds: Double { max(memorySeconds, computeSeconds) }
    var bound: String { memorySeconds >= computeSeconds ? "memory" : "compute" }
    private var owned: [UnsafeMutableBufferPointer<Float>] = []
    /// FLOPs the loop actually did (rounded up to whole steps); the compute
    /// floor is scaled back to `flops`.
    private var loopFlops = 0

    struct Shared {
        var reading: [UnsafeBufferPointer<Float>] = []
        var accumulating: [UnsafeMutableBufferPointer<Float>] = []
        var writing: [UnsafeMutableBufferPointer<Float>] = []
    }

    /// `reading`, `accumulating`, `writing`: float counts of the pass's own
    /// buffers; `sharing`: the case's buffers, moved in place.
    init(reading: [Int] = [], accumulating: [Int] = [], writing: [Int] = [], sharing: Shared = Shared(),
         flops: Int, threads: Int) {
        func allocate(_ counts: [Int]) -> [UnsafeMutableBufferPointer<Float>] {
            counts.filter { $0 > 0 }.map { count in
                let buffer = UnsafeMutableBufferPointer<Float>.allocate(capacity: count)
                buffer.initialize(repeating: 1)  // first touch here, not in a timed pass
                return buffer
            }
        }
        let ins = allocate(reading), accs = allocate(accumulating), outs = allocate(writing)
        owned = ins + accs + outs
        pass = StreamingPass(reading: sharing.reading + ins.map { UnsafeBufferPointer($0) },
                             accumulating: sharing.accumulating + accs, writing: sharing.writing + outs, threads: threads)
        self.flops = flops
        self.threads = threads
    }

    deinit { owned.forEach { $0.deallocate() } }

    /// The two timed variants: the streaming pass (adding 0, so a case's own
    /// `y` keeps its values) and the FMA loop for `flops`.
    fileprivate var variants: [() throws -> Void] {
        [{ [pass] in pass.run(delta: 0) }, { [self] in loopFlops = FMALoop.run(flops: flops, threads: threads).flops }]
    }

    fileprivate func record(memory: Double, loop: Double) {
        memorySeconds = memory
        computeSeconds = flops == 0 ? 0 : loop * Double(flops) / Double(max(loopFlops, 1))
    }

    /// The `floor` row (DESIGN §8): `seconds` and `floor` the larger floor,
    /// `bound` which one it is. `of` names the variant it floors when the
    /// case has several.
    func row(case name: String, n: Int, of variant: String? = nil, extra: [(String, Any)] = []) -> [(String, Any)] {
        var fields: [(String, Any)] = [("case", name), ("variant", "floor"), ("n", n), ("impl", "adaptc"), ("threads", threads),
                                       ("seconds", seconds), ("flops", flops), ("bytes", bytes)]
        if let variant { fields.append(("of", variant)) }
        fields += [("floor", seconds), ("bound", bound), ("memory_floor", memorySeconds), ("compute_floor", computeSeconds)]
        fields.append(("memory_gb_per_s", Double(bytes) / memorySeconds * 1e-9))
        if flops > 0 { fields.append(("fma_gflop_per_s", Double(flops) / computeSeconds * 1e-9)) }
        return fields + extra
    }
}

extension Bench {
    /// Median seconds of each of `variants`, alternating with every floor's
    /// streaming pass and FMA loop (so drift on a shared machine hits the case
    /// and its floors alike); the floors keep their own seconds.
    static func timeWithFloors(_ variants: [() throws -> Void], floors: [CaseFloor], repeats: Int, warmup: Int = 3) throws -> [Double] {
        let times = try timeAlternating(variants + floors.flatMap(\.variants), repeats: repeats, warmup: warmup)
        for (i, floor) in floors.enumerated() {
            floor.record(memory: times[variants.count + 2 * i], loop: times[variants.count + 2 * i + 1])
        }
        return Array(times.prefix(variants.count))
    }

    /// A case's row with `bytes` (the floor's unless given), and `vs_floor` = seconds / floor.
    static func emit(_ fields: [(String, Any)], floor: CaseFloor, bytes: Int? = nil) {
        let seconds = fields.first { $0.0 == "seconds" }?.1 as? Double ?? .nan
        var row = fields
        let at = (row.firstIndex { $0.0 == "flops" } ?? row.count - 1) + 1
        row.insert(("bytes", bytes ?? floor.bytes), at: at)
        row.append(("vs_floor", seconds / floor.seconds))
        emit(row)
    }
}
