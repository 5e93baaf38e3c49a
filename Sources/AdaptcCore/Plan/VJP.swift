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
        var gradientOf: [TensorView: TensorView] = [:]
        func gradient(_ view: TensorView) -> (view: TensorView, accumulate: Bool) {
            var g = view
            switch view.storage {
            case .parameters: g.storage = .gradients; g.name = "d" + view.name
            case .prepared: g.storage = .preparedGradients; g.name = "d" + view.name
            case .input: g.storage = .inputGradient; g.name = "dx"
            case .output: g.storage = .outputGradient; g.name = "dy"
            case .workspace:
                if let known = gradientOf[view] { return (known, false) }
                let placed = workspace("d" + view.name, view.modes, view.extents)
                gradientOf[view] = placed
                return (placed, false)
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
                result += NetworkLowering.legalize(Contraction(db.view, step.a, dT, alpha: step.alpha, accumulate: db.accumulate), place: workspace)
            } else {
                result += NetworkLowering.legalize(Contraction(da.view, dT, nil, alpha: step.alpha, accumulate: da.accumulate), place: workspace)
            }
        }
        return result
    }
}
