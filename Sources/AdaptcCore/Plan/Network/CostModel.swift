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
}
