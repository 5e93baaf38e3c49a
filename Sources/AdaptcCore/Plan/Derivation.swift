import AdaptRuntime

/// The programs every planner derives from a pair's token-side contractions,
/// whatever the structure: backward as their VJP, materialize as the
/// contraction of what they read (the frontier) without `x`.
enum Derivation {
    /// Recompute the forward intermediates (every step but those writing `y`),
    /// then the VJP of each step in reverse (`VJP`), with the contributions to
    /// one gradient computed side by side (`AccumulationSplit`); the steps
    /// that map rows to rows run first on row blocks, the sums over rows after
    /// (`RowPhases`).
    static func backward(of forward: [Contraction], place: (String, [String], [Extent]) -> TensorView) -> Program {
        let gradients = VJP.backward(of: forward, workspace: place)
        let steps = AccumulationSplit.split(forward.filter { $0.output.storage != .output } + gradients, place: place)
        return RowPhases.program(steps)
    }

    /// `ΔW = s·(contraction of the tensors the token side reads)`, in the order
    /// the path optimizer picks for that small network.
    static func materialize(_ inputs: [(name: String, view: TensorView)], delta: TensorView, scale: Float,
                                           model: CostModel,
                                           place: (String, [String], [Extent]) -> TensorView) -> Program {
        if inputs.count == 1 {
            return Program([[Contraction(delta, inputs[0].view, nil, alpha: scale, accumulate: false)]])
        }
        var extents: [String: Extent] = [:]
        for (_, v) in inputs { for (m, e) in zip(v.modes, v.extents) { extents[m] = e } }
        let network = TensorNetwork(inputs.map { TensorNetwork.Tensor($0.name, $0.view.modes) }, output: delta.modes, extents: extents)
        let path = PathOptimizers.automatic(for: network).path(for: network, model: model)
        let lowering = NetworkLowering(network, path: path.steps, model: model)
        var views: [Int: TensorView] = [:]
        for (i, input) in inputs.enumerated() { views[i] = input.view }
        let last = lowering.steps.count - 1
        let steps = lowering.lower(Array(lowering.steps.indices), views: &views, output: (last, delta, scale, false),
                                   name: { "m\($0 + 1)" }, place: place)
        return Program(NetworkLowering.stages(steps.map(\.contraction)))
    }
}
