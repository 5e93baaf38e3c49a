/// How a parallel product cuts one output side into blocks: from the shape
/// alone, never from the thread count. Each block is one kernel call, and a
/// kernel's result for an element depends on the sub-shape it is called on
/// (OpenBLAS runs a tail of rows or columns through other micro-kernels), so
/// with blocks fixed by the shape every element comes from the same call on
/// the same sub-shape for any `threads` (1 runs the blocks in order): results
/// are bitwise identical across thread counts (README, "Development: hardening").
public struct FixedBlocks: Sendable, Equatable {
    /// At most this many blocks: 12 divides evenly among 1, 2, 3, 4 and 6 threads.
    public static let maximumCount = 12
    /// Each block at least this many flops, so it pays for its call and its task.
    public static let minimumWork = 2_000_000

    /// The side's length and the (equal) length of every block but the last.
    public let extent: Int
    public let length: Int

    /// Blocks over `extent` rows or columns, each unit costing `unitWork` flops;
    /// lengths are whole multiples of `panel` (SIMD panels stay whole).
    public init(extent: Int, unitWork: Int, panel: Int = 16) {
        let byCount = (extent + Self.maximumCount - 1) / Self.maximumCount
        let byWork = (Self.minimumWork + max(unitWork, 1) - 1) / max(unitWork, 1)
        self.extent = extent
        length = max((max(byCount, byWork) + panel - 1) / panel * panel, 1)
    }

    /// Blocks of a given `length` (the last one shorter), for a caller that
    /// sizes them by another rule of the shape.
    init(extent: Int, length: Int) {
        self.extent = extent
        self.length = max(length, 1)
    }

    /// One block: the whole side (a product too small to split).
    public init(whole extent: Int) {
        self.extent = extent
        length = max(extent, 1)
    }

    public var count: Int { (extent + length - 1) / length }

    public subscript(block: Int) -> Range<Int> {
        block * length..<min(extent, (block + 1) * length)
    }

    /// `body` on every block over TBB (`Parallel.forEach`; in order at one thread).
    /// - Parameters:
    ///   - threads: TBB threads (0: TBB's default).
    ///   - body: Called once per block with its range.
    public func forEach(threads: Int, _ body: (Range<Int>) -> Void) {
        Parallel.forEach(count, threads: threads) { parts in
            for part in parts { body(self[part]) }
        }
    }
}
