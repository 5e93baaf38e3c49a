import AdaptRuntime

/// Reverse-mode derivative of a list of contractions, derived from the
/// contractions themselves (never written per structure): for
/// `T = α·Σ a·b`, `da += α·Σ dT·b` and `db += α·Σ a·dT`, each again a
/// contraction over the same modes (a copy `T = α·a` gives `da += α·dT`).
/// Steps are visited in reverse. Gradients land by where the value lives:
/// parameters → `gradients`, prepared state → `preparedGradients`, `x` →
/// `dx`, `y` → read from `dy`; token intermediates get workspace of their own.
enum VJP {
    /// - Parameters:
    ///   - workspace: places the gradient of a workspace intermediate and any
    ///     copy a gradient step needs to lower (`NetworkLowering.legalize`).
    static func backward(of steps: [Contraction], workspace: (String, [String], [Extent]) -> TensorView) -> [Contraction] {
        // Workspace values are the outputs of forward steps; an operand may be a
        // slice of one (a module's columns of a stacked z). Each gets a gradient
        // region of the same layout, and a slice maps to the same slice of it.
        var regions: [(value: TensorView, gradient: TensorView)] = []
        var written: [TensorView] = []
        func region(of view: TensorView) -> (value: TensorView, gradient: TensorView) {
            let n = 64
            if let known = regions.first(where: { r in
                r.value.storage == view.storage && r.value.offset.value(tokens: n) <= view.offset.value(tokens: n)
                    && view.end.value(tokens: n) <= r.value.end.value(tokens: n) && r.value.mayOverlap(view)
            }) { return known }
            let root = steps.first { $0.output.storage == .workspace && $0.output.mayOverlap(view) }?.output ?? view
            let entry = (value: root, gradient: workspace("d" + root.name, root.modes, root.extents))
            regions.append(entry)
            return entry
        }
        func gradient(_ view: TensorView) -> (view: TensorView, accumulate: Bool) {
            var g = view
            switch view.storage {
            case .parameters: g.storage = .gradients; g.name = "d" + view.name
            case .prepared: g.storage = .preparedGradients; g.name = "d" + view.name
            case .input: g.storage = .inputGradient; g.name = "dx"
            case .output: g.storage = .outputGradient; g.name = "dy"
            case .workspace:
                let r = region(of: view)
                g.name = "d" + view.name
                g.offset = r.gradient.offset + (view.offset + Extent(-r.value.offset.constant, perToken: -r.value.offset.perToken))
                // The first contribution to a region writes it, later ones (a value
                // several modules read) add.
                let accumulate = written.contains { $0.mayOverlap(g) }
                return (g, accumulate)
            default: preconditionFailure("no gradient for \(view.storage)")
            }
            return (g, true)
        }
        var result: [Contraction] = []
        for step in steps.reversed() {
            let dT = gradient(step.output).view
            let da = gradient(step.a)
            if let b = step.b {
                let db = gradient(b)
                result += NetworkLowering.legalize(Contraction(da.view, dT, b, alpha: step.alpha, accumulate: da.accumulate), place: workspace)
                if da.view.storage == .workspace { written.append(da.view) }
                result += NetworkLowering.legalize(Contraction(db.view, step.a, dT, alpha: step.alpha, accumulate: db.accumulate), place: workspace)
                if db.view.storage == .workspace { written.append(db.view) }
            } else {
                result += NetworkLowering.legalize(Contraction(da.view, dT, nil, alpha: step.alpha, accumulate: da.accumulate), place: workspace)
                if da.view.storage == .workspace { written.append(da.view) }
            }
        }
        return result
    }
}
