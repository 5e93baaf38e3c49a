/// One step of a plan: `output (=|+=) alpha · Σ a·b`, an einsum of two strided
/// tensors. Modes are matched by name: a mode in all three is a batch mode,
/// one in `a` and `b` but not in `output` is summed, the others are free.
/// With no summed mode the step is element-wise (a Hadamard or diagonal
/// scaling, e.g. CP's `diag(F_layer[l] ⊙ F_module[m])`); without `b` it is a
/// copy into another mode order (a permutation: the last resort of lowering).
public struct Contraction: Hashable, Sendable, CustomStringConvertible, Codable {
    public var output: TensorView
    public var a: TensorView
    public var b: TensorView?
    public var alpha: Float
    /// `+=` when true; otherwise the output is overwritten.
    public var accumulate: Bool

    public init(_ output: TensorView, _ a: TensorView, _ b: TensorView?, alpha: Float = 1, accumulate: Bool) {
        self.output = output
        self.a = a
        self.b = b
        self.alpha = alpha
        self.accumulate = accumulate
    }

    /// Modes summed over (in `a` and `b`, not in `output`), in `a`'s order.
    public var summedModes: [String] {
        guard let b else { return [] }
        return a.modes.filter { b.modes.contains($0) && !output.modes.contains($0) }
    }

    /// Modes kept by both operands and the result.
    public var batchModes: [String] {
        guard let b else { return [] }
        return output.modes.filter { a.modes.contains($0) && b.modes.contains($0) }
    }

    public var description: String { describe(\.description) }

    /// The step as an einsum, each view printed by `view`.
    func describe(_ view: (TensorView) -> String) -> String {
        let scale = alpha == 1 ? "" : "\(alpha)·"
        let op = accumulate ? "+=" : "="
        guard let b else { return "\(view(output)) \(op) \(scale)\(view(a))" }
        let summed = summedModes
        if summed.isEmpty { return "\(view(output)) \(op) \(scale)\(view(a))⊙\(view(b))" }
        return "\(view(output)) \(op) \(scale)Σ_\(summed.joined(separator: ",")) \(view(a))·\(view(b))"
    }

    /// The step of task `task`: each view with its `taskStride` applied.
    public func forTask(_ task: Int) -> Contraction {
        Contraction(output.forTask(task), a.forTask(task), b?.forTask(task), alpha: alpha, accumulate: accumulate)
    }

    /// Multiply-adds ×2 (element-wise steps: one flop per element and factor).
    public var flops: Extent { lowered?.flops ?? .fixed(0) }
}
