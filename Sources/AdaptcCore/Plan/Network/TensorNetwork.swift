import AdaptRuntime

/// A contraction network (DESIGN §2): tensors with named modes, each mode
/// with an extent that may grow with the token count n. Contracting the whole
/// network yields a tensor over `outputModes`; every other mode is summed.
/// The planner builds one per program (e.g. `x[n,i]·A[r,i]·B[o,r] → y[n,o]`),
/// a `PathOptimizer` picks the order, and lowering turns the path into
/// Plan IR contractions.
public struct TensorNetwork: Hashable, Sendable, CustomStringConvertible {
    public struct Tensor: Hashable, Sendable {
        public var name: String
        public var modes: [String]
        public init(_ name: String, _ modes: [String]) {
            self.name = name
            self.modes = modes
        }
    }

    public var tensors: [Tensor]
    public var outputModes: [String]
    public var extents: [String: Extent]
    /// Output modes the plan fixes per call (`layer`, `module`): they select a
    /// slice rather than lay out the caller's buffer.
    public var slicedModes: Set<String>

    public init(_ tensors: [Tensor], output: [String], extents: [String: Extent], slicedModes: Set<String> = []) {
        self.tensors = tensors
        self.outputModes = output
        self.extents = extents
        self.slicedModes = slicedModes
    }

    public func extent(_ mode: String) -> Extent { extents[mode] ?? .fixed(1) }

    /// Modes a partial result over the tensor set `members` keeps: those also
    /// used outside it or by the output, in first-appearance order.
    public func keptModes(of members: [Int]) -> [String] {
        let inside = Set(members)
        var outside = Set(outputModes)
        for (i, t) in tensors.enumerated() where !inside.contains(i) { outside.formUnion(t.modes) }
        var kept: [String] = []
        for i in members.sorted() {
            for mode in tensors[i].modes where outside.contains(mode) && !kept.contains(mode) { kept.append(mode) }
        }
        return kept
    }

    public var description: String {
        tensors.map { "\($0.name)[\($0.modes.joined(separator: ","))]" }.joined(separator: "·") + " → [\(outputModes.joined(separator: ","))]"
    }
}

/// An order of pairwise contractions, opt_einsum's "SSA" form: tensors are
/// numbered 0..<N, and step k's result gets number N + k.
public struct ContractionPath: Hashable, Sendable, CustomStringConvertible {
    public var steps: [(Int, Int)]
    public var cost: PathCost

    public init(steps: [(Int, Int)], cost: PathCost) {
        self.steps = steps
        self.cost = cost
    }

    public static func == (a: ContractionPath, b: ContractionPath) -> Bool {
        a.cost == b.cost && a.steps.map { [$0.0, $0.1] } == b.steps.map { [$0.0, $0.1] }
    }

    public func hash(into hasher: inout Hasher) {
        for (i, j) in steps { hasher.combine(i); hasher.combine(j) }
    }

    public var description: String { steps.map { "(\($0.0), \($0.1))" }.joined(separator: " ") }
}
