import AdaptRuntime

/// What a path costs: floating-point operations and bytes moved (float32
/// operands read, result written), each linear in n. Kept apart from the
/// search, as opt_einsum does, so strategies share one notion of "cheaper".
public struct PathCost: Hashable, Sendable, CustomStringConvertible {
    public var flops: Extent
    public var bytes: Extent
    /// Largest intermediate, in elements.
    public var peak: Extent

    public init(flops: Extent = Extent(0), bytes: Extent = Extent(0), peak: Extent = Extent(0)) {
        self.flops = flops
        self.bytes = bytes
        self.peak = peak
    }

    public static func + (a: PathCost, b: PathCost) -> PathCost {
        PathCost(flops: a.flops + b.flops, bytes: a.bytes + b.bytes,
                 peak: .atLeast(a.peak, b.peak))
    }

    public var description: String { "\(flops) flops, \(bytes) bytes" }
}

/// Scores a cost as time: flops at the machine's rate plus bytes at its
/// bandwidth, evaluated at a representative token count. The two rates are
/// this project's measured 2-core figures (DESIGN §8: ≈ 500 GFLOP/s sgemm,
/// ≈ 22 GB/s memory), so one byte weighs like ≈ 23 flops.
public struct CostModel: Sendable {
    public var tokens: Int
    public var flopsPerByte: Double

    public init(tokens: Int = 64, flopsPerByte: Double = 23) {
        self.tokens = tokens
        self.flopsPerByte = flopsPerByte
    }

    public static let standard = CostModel()

    public func score(_ cost: PathCost) -> Double {
        Double(cost.flops.value(tokens: tokens)) + flopsPerByte * Double(cost.bytes.value(tokens: tokens))
    }

    /// Cost of contracting two tensors with modes `a` and `b` into `result`:
    /// 2·∏(all modes involved) flops; reads both operands, writes the result.
    public func contraction(_ a: [String], _ b: [String], into result: [String], in network: TensorNetwork) -> PathCost {
        var modes: [String] = []
        for m in a + b where !modes.contains(m) { modes.append(m) }
        let size = { (ms: [String]) in ms.reduce(Extent(1)) { $0 * network.extent($1) } }
        let flops = size(modes) * 2
        let bytes = (size(a) + size(b) + size(result)) * 4
        return PathCost(flops: flops, bytes: bytes, peak: size(result))
    }

    /// The last step writes the caller's output, whose layout is fixed: when the
    /// output modes each operand brings do not form one block of that layout
    /// (e.g. `y[n, out.0…out.3]` from `P[out.0…out.2, r]·t[r, out.3, n]`), no
    /// GEMM can write it and lowering computes into a temporary and copies it
    /// over — bytes this charges (write and read the result once more).
    /// Modes the plan slices away per pair (`slicedModes`) do not count.
    public func outputLayoutPenalty(_ a: [String], _ b: [String], in network: TensorNetwork) -> PathCost {
        var labels: [Bool] = []  // true: the mode comes from a alone
        for mode in network.outputModes where !network.slicedModes.contains(mode) && network.extent(mode) != .fixed(1) {
            let inA = a.contains(mode), inB = b.contains(mode)
            if inA == inB { continue }
            if labels.last != inA { labels.append(inA) }
        }
        guard labels.count > 2 else { return PathCost() }
        let size = network.outputModes.filter { !network.slicedModes.contains($0) }.reduce(Extent(1)) { $0 * network.extent($1) }
        let perPair = network.outputModes.filter { network.slicedModes.contains($0) }.reduce(1) { $0 * network.extent($1).constant }
        return PathCost(bytes: size * (8 * perPair))
    }
}
