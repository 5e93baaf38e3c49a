/// Checks the invariants every consumer of a plan relies on: each contraction
/// lowers (to a GEMM in loops, or an element-wise loop) with agreeing extents, every view stays inside its buffer,
/// an output never aliases its operands, contractions in one stage touch
/// disjoint outputs and read nothing another writes, and row-local stages
/// hold only row-local contractions. Run after planning (and by
/// the tests on every spec), and in debug builds on each program after every
/// pass that rewrites it (`assertValid`); a failure is a compiler bug, not a user error.
public enum PlanVerifier {
    public static func verify(_ plan: Plan) -> [String] {
        var problems: [String] = []
        var end = 0
        for p in plan.parameters {
            if p.offset != end { problems.append("parameter \(p.key) at offset \(p.offset), expected \(end)") }
            end = p.offset + p.count
        }
        for group in plan.groups {
            // A group with tasks: every task's programs (`taskStride` applied)
            // must hold, bounds and independence decided for each task, and
            // only owned tensors may move with the task (token rows are routed
            // by `TaskRouting`, the workspace is one call's).
            let taskCount = max(1, group.tasks.count)
            func check(_ program: Program, _ context: String, _ plan: Plan?, _ io: TokenShapes?, _ problems: inout [String]) {
                for view in program.contractions.flatMap({ [$0.output, $0.a] + ($0.b.map { [$0] } ?? []) })
                where view.taskStride != 0 && (!view.storage.isOwned || group.tasks.isEmpty) {
                    problems.append("\(context): \(view.name) in \(view.storage) moves with a task"
                                    + (group.tasks.isEmpty ? " in a group without tasks" : ""))
                }
                for task in 0..<taskCount {
                    PlanVerifier.check(program.forTask(task), taskCount == 1 ? context : "\(context) task \(task)", plan, io, &problems)
                }
            }
            for pair in group.pairs {
                let io = TokenShapes(input: [pair.inFeatures], output: [pair.outFeatures])
                for (what, program) in [("forward", pair.forward), ("backward", pair.backward)] {
                    check(program, "\(group.name) \(pair.key) \(what)", plan, io, &problems)
                }
                let delta = TokenShapes(input: [], output: [], delta: pair.outFeatures * pair.inFeatures)
                check(pair.materialize, "\(group.name) \(pair.key) materialize", plan, delta, &problems)
            }
            for fused in group.layerForwards {
                let outs = fused.modules.map { m in group.pairs.first { $0.layer == fused.layer && $0.module == m }?.outFeatures ?? 0 }
                let ins = fused.modules.map { m in group.pairs.first { $0.layer == fused.layer && $0.module == m }?.inFeatures ?? 0 }
                if Set(ins).count > 1 { problems.append("\(group.name) layer \(fused.layer): fused modules differ in input size") }
                check(fused.program, "\(group.name) layer \(fused.layer) forward", plan, TokenShapes(input: [ins.first ?? 0], output: outs), &problems)
            }
            for fused in group.layerBackwards {
                let outs = fused.modules.map { m in group.pairs.first { $0.layer == fused.layer && $0.module == m }?.outFeatures ?? 0 }
                let ins = fused.modules.map { m in group.pairs.first { $0.layer == fused.layer && $0.module == m }?.inFeatures ?? 0 }
                check(fused.program, "\(group.name) layer \(fused.layer) backward", plan, TokenShapes(input: [ins.first ?? 0], output: outs), &problems)
            }
            check(group.prepare, "\(group.name) prepare", plan, TokenShapes(input: [], output: []), &problems)
            check(group.finishBackward, "\(group.name) finishBackward", plan, TokenShapes(input: [], output: []), &problems)
        }
        return problems
    }

    /// The invariants of one program that need no buffer sizes: each step
    /// lowers with agreeing extents, no output aliases its operands, a stage's
    /// steps are independent, row-local stages hold row-local steps. What
    /// every pass that rewrites a program must keep (`assertValid`).
    public static func verify(_ program: Program, _ context: String) -> [String] {
        var problems: [String] = []
        check(program, context, nil, nil, &problems)
        return problems
    }

    /// In debug builds, stops with the pass's name when `program` is not valid
    /// (`verify(_:_:)`): the planner runs this after each pass, so a broken pass
    /// is named where it breaks, not found in the finished plan. Nothing in release builds.
    public static func assertValid(_ program: Program, after pass: String) {
        #if DEBUG
        let problems = verify(program, "after \(pass)")
        assert(problems.isEmpty, "internal error: \(pass) made an invalid program:\n" + problems.joined(separator: "\n"))
        #endif
    }

    /// `assertValid` for steps that run one after another.
    public static func assertValid(_ steps: [Contraction], after pass: String) {
        #if DEBUG
        assertValid(Program(steps.map { [$0] }), after: pass)
        #endif
    }

    /// Row widths of the caller's token buffers, per slot.
    private struct TokenShapes {
        var input: [Int]
        var output: [Int]
        var delta: Int = 0

        func bound(_ view: MatrixView, plan: Plan) -> Extent? {
            switch view.storage {
            case .parameters, .gradients: return .fixed(plan.parameterCount)
            case .prepared: return .fixed(plan.preparedCount)
            case .preparedGradients: return .fixed(plan.preparedGradientCount)
            case .workspace: return plan.workspace
            case .input, .inputGradient: return view.slot < input.count ? Extent.tokens * input[view.slot] : nil
            case .output, .outputGradient: return view.slot < output.count ? Extent.tokens * output[view.slot] : nil
            case .delta: return .fixed(delta)
            }
        }
    }

    /// Buffer bounds are checked when `plan` and `io` are given.
    private static func check(_ program: Program, _ context: String, _ plan: Plan?, _ io: TokenShapes?, _ problems: inout [String]) {
        if program.rowLocalStages < 0 || program.rowLocalStages > program.stages.count {
            problems.append("\(context): \(program.rowLocalStages) row-local stages of \(program.stages.count)")
        }
        for (s, stage) in program.stages.enumerated() {
            for c in stage {
                let here = "\(context) stage \(s): \(c)"
                var extents: [String: Extent] = [:]
                var agree = true
                for view in [c.output, c.a] + (c.b.map { [$0] } ?? []) {
                    for (mode, e) in zip(view.modes, view.extents) {
                        if let seen = extents[mode], seen != e {
                            problems.append("\(here): extents of mode \(mode) differ (\(seen) and \(e))")
                            agree = false
                        }
                        extents[mode] = e
                    }
                }
                guard agree else { continue }
                let lowered = c.lowered
                guard lowered != nil else {
                    problems.append("\(here): does not lower to a GEMM or an element-wise loop")
                    continue
                }
                if s < program.rowLocalStages && !c.isRowLocal(lowered: lowered) {
                    problems.append("\(here): in a row-local stage, but does not map token rows to token rows")
                }
                for view in [c.output, c.a] + (c.b.map { [$0] } ?? []) {
                    guard let io, let plan else { break }
                    guard let bound = io.bound(view, plan: plan) else {
                        problems.append("\(here): \(view.name) uses a missing slot")
                        continue
                    }
                    let end = view.end
                    if !view.offset.isAtLeast(.fixed(0)) || !bound.isAtLeast(end) {
                        problems.append("\(here): \(view.name) [\(view.offset), \(end)) exceeds its buffer (\(bound))")
                    }
                }
                for operand in [c.a] + (c.b.map { [$0] } ?? []) where overlaps(c.output, operand) {
                    problems.append("\(here): output aliases \(operand.name)")
                }
            }
            for (i, c) in stage.enumerated() {
                for d in stage[(i + 1)...] {
                    let reads = { (x: Contraction) in [x.a] + (x.b.map { [$0] } ?? []) }
                    if overlaps(c.output, d.output) || reads(d).contains(where: { overlaps(c.output, $0) })
                        || reads(c).contains(where: { overlaps(d.output, $0) }) {
                        problems.append("\(context) stage \(s): \(c) and \(d) are not independent")
                    }
                }
            }
        }
    }

    private static func overlaps(_ u: TensorView, _ v: TensorView) -> Bool { u.mayOverlap(v) }
}

extension PlanVerifier {
    /// The rule of one `PlanStep` (`context` prefixes each problem): a
    /// contraction lowers; a map's views have the same one or two modes with
    /// the same extents; a row norm's output is one mode of its one- or
    /// two-mode input; a row rescale's vectors have one mode, a mode of `a`,
    /// and its output `a`'s modes; extents agree wherever a mode appears;
    /// each view lies in `[0, bound)` of its buffer (nil: not checked); an
    /// output overlaps no operand, except that a map or rescale may write
    /// exactly the view it reads (element by element, read before written).
    public static func verify(_ step: PlanStep, _ context: String, bound: (TensorView) -> Extent?) -> [String] {
        let here = "\(context): \(step.layoutDescription)"
        var problems: [String] = []
        var extents: [String: Extent] = [:]
        for view in [step.output] + step.operands {
            for (mode, e) in zip(view.modes, view.extents) {
                if let seen = extents[mode], seen != e { problems.append("\(here): extents of mode \(mode) differ (\(seen) and \(e))") }
                extents[mode] = e
            }
        }
        func lines(_ view: TensorView) -> Bool { (1...2).contains(view.modes.count) && Set(view.modes).count == view.modes.count }
        var inPlace: TensorView? = nil
        switch step {
        case .contract(let c):
            if problems.isEmpty && c.lowered == nil { problems.append("\(here): does not lower to a GEMM or an element-wise loop") }
        case .map(let s):
            if !lines(s.input) || Set(s.input.modes) != Set(s.output.modes) || s.input.modes.count != s.output.modes.count {
                problems.append("\(here): a map's input and output need the same one or two modes")
            }
            inPlace = s.input
        case .rowNorm(let s):
            if s.output.modes.count != 1 || !lines(s.input) || !s.input.modes.contains(s.row) {
                problems.append("\(here): a row norm's output needs one mode of its one- or two-mode input")
            }
        case .rowScale(let s):
            if !lines(s.a) || Set(s.a.modes) != Set(s.output.modes) || s.a.modes.count != s.output.modes.count {
                problems.append("\(here): a rescale's a and output need the same one or two modes")
            }
            for v in [s.scale, s.divisor].compactMap({ $0 }) where v.modes != [s.row] || !s.a.modes.contains(s.row) {
                problems.append("\(here): \(v.name) needs the one mode \(s.row), a mode of \(s.a.name)")
            }
            inPlace = s.a
        }
        for view in [step.output] + step.operands {
            guard let limit = bound(view) else { continue }
            if !view.offset.isAtLeast(.fixed(0)) || !limit.isAtLeast(view.end) {
                problems.append("\(here): \(view.name) [\(view.offset), \(view.end)) exceeds its buffer (\(limit))")
            }
        }
        for operand in step.operands where operand != inPlace && overlaps(step.output, operand) {
            problems.append("\(here): output aliases \(operand.name)")
        }
        if let inPlace, inPlace != step.output, overlaps(step.output, inPlace) {
            problems.append("\(here): output aliases \(inPlace.name)")
        }
        return problems
    }
}
