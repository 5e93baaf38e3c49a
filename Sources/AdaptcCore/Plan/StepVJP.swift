import AdaptRuntime

/// Reverse-mode rules of the plan IR's steps (`PlanStep`), in `VJP`'s style:
/// each rule is again a list of steps, every gradient added (`+=`) into the
/// view `gradient` names for a value (the caller zeroes it first), temporaries
/// placed by `workspace`. With `ȳ` the output's gradient:
/// - contraction `T = α·Σ a·b`: `ā += α·Σ T̄·b`, `b̄ += α·Σ a·T̄` (a copy: `ā += α·T̄`);
/// - map: `x̄ += f′(x)·ȳ` — scale `α·ȳ`; square `2·x⊙ȳ`; reciprocal
///   `−y²⊙ȳ`; rsqrt `−½·y³⊙ȳ` (y the map's output, read after forward);
/// - row norm `y_r = ‖x_r‖`: `x̄_rc += x_rc·ȳ_r / y_r` (a row rescale);
/// - row rescale `o = α·a·(u/w)`: `ā += α·ō·(u/w)`; with `t_r = Σ_c a_rc·ō_rc`,
///   `ū += α·t/w`, `w̄ += −α·(t·u/w)/w`.
/// The norm DoRA detaches (DESIGN §5) is a value without a gradient: the caller
/// passes a `divisor` whose gradient it drops.
enum StepVJP {
    /// - Parameters:
    ///   - step: a forward step.
    ///   - gradient: the gradient view of a value view (same modes and extents), nil: not wanted.
    ///   - workspace: a temporary `(name, modes, extents)`.
    static func backward(of step: PlanStep, gradient: (TensorView) -> TensorView?,
                         workspace: (String, [String], [Extent]) -> TensorView) -> [PlanStep] {
        guard let dOut = gradient(step.output) else { return [] }
        var steps: [PlanStep] = []
        switch step {
        case .contract(let c):
            if let da = gradient(c.a) { steps.append(.contract(Contraction(da, dOut, c.b, alpha: c.alpha, accumulate: true))) }
            if let b = c.b, let db = gradient(b) { steps.append(.contract(Contraction(db, c.a, dOut, alpha: c.alpha, accumulate: true))) }
        case .map(let s):
            guard let dx = gradient(s.input) else { return [] }
            switch s.op {
            case .scale(let alpha):
                steps.append(.contract(Contraction(dx, dOut, nil, alpha: alpha, accumulate: true)))
            case .square:
                steps.append(.contract(Contraction(dx, s.input, dOut, alpha: 2, accumulate: true)))
            case .reciprocal:
                let y2 = workspace("\(s.output.name)²", s.output.modes, s.output.extents)
                steps.append(.map(MapStep(y2, .square, s.output)))
                steps.append(.contract(Contraction(dx, y2, dOut, alpha: -1, accumulate: true)))
            case .rsqrt:
                let y2 = workspace("\(s.output.name)²", s.output.modes, s.output.extents)
                let y3 = workspace("\(s.output.name)³", s.output.modes, s.output.extents)
                steps.append(.map(MapStep(y2, .square, s.output)))
                steps.append(.contract(Contraction(y3, y2, s.output, accumulate: false)))
                steps.append(.contract(Contraction(dx, y3, dOut, alpha: -0.5, accumulate: true)))
            }
        case .rowNorm(let s):
            guard let dx = gradient(s.input) else { return [] }
            steps.append(.rowScale(RowScaleStep(dx, s.input, scale: dOut, divisor: s.output, accumulate: true)))
        case .rowScale(let s):
            if let da = gradient(s.a) {
                steps.append(.rowScale(RowScaleStep(da, dOut, scale: s.scale, divisor: s.divisor, alpha: s.alpha, accumulate: true)))
            }
            let du = s.scale.flatMap(gradient), dw = s.divisor.flatMap(gradient)
            guard du != nil || dw != nil else { break }
            // t_r = Σ_c a_rc·ō_rc, the sum both vector gradients share.
            let t = workspace("t", [s.row], [s.a.extent(of: s.row)!])
            steps.append(.contract(Contraction(t, s.a, dOut, accumulate: false)))
            if let du {
                steps.append(.rowScale(RowScaleStep(du, t, scale: nil, divisor: s.divisor, alpha: s.alpha, accumulate: true)))
            }
            if let dw, let w = s.divisor {
                let tf = workspace("t·f", [s.row], [s.a.extent(of: s.row)!])
                steps.append(.rowScale(RowScaleStep(tf, t, scale: s.scale, divisor: w)))
                steps.append(.rowScale(RowScaleStep(dw, tf, scale: nil, divisor: w, alpha: -s.alpha, accumulate: true)))
            }
        }
        return steps
    }
}
