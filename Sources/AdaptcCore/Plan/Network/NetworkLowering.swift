import AdaptRuntime

/// Turns a contraction path into Plan IR: one contraction per step, each
/// intermediate stored in the mode order that lets both the step that makes it
/// and the step that reads it run as one GEMM (TACO's "choose the layout, not
/// the transpose"); where no order fits, the step runs inside loops, and only
/// when BLAS cannot take an operand at all is it copied into a new order.
struct NetworkLowering {
    /// One step of a path as the lowering sees it: its operands by SSA id
    /// (tensors 0..<N, step k's result N + k) and the modes its result keeps.
    struct Step {
        var left: Int, right: Int
        var resultModes: [String]
    }

    let network: TensorNetwork
    let steps: [Step]

    init(_ network: TensorNetwork, path: [(Int, Int)], model: CostModel = .standard) {
        self.network = network
        steps = PathReplay(network, path, model: model).steps.map { Step(left: $0.left, right: $0.right, resultModes: $0.resultModes) }
    }

    /// The step (index) that reads SSA value `id`, if any.
    func consumer(of id: Int) -> Int? { steps.firstIndex { $0.left == id || $0.right == id } }

    /// SSA ids a step's result depends on (its leaves).
    func leaves(of id: Int) -> Set<Int> {
        if id < network.tensors.count { return [id] }
        let step = steps[id - network.tensors.count]
        return leaves(of: step.left).union(leaves(of: step.right))
    }

    /// Lowers `which` steps (in path order). `views` holds the view of every
    /// SSA value already available (inputs, earlier results); `place` gives the
    /// storage of a new intermediate with the chosen modes and extents; `final`
    /// names the step that writes `output` (with `alpha`, `+=` when `accumulate`).
    /// Copies an operand needs go through `place` too. Returns the contractions
    /// in order, each with the SSA id it defines (copies define none: -1).
    func lower(_ which: [Int], views: inout [Int: TensorView], removing removed: Set<String> = [],
               output: (step: Int, view: TensorView, alpha: Float, accumulate: Bool)?,
               name: (Int) -> String,
               place: (_ name: String, _ modes: [String], _ extents: [Extent]) -> TensorView) -> [(id: Int, contraction: Contraction)] {
        var result: [(id: Int, contraction: Contraction)] = []
        for k in which {
            let step = steps[k]
            let a = views[step.left]!, b = views[step.right]!
            let id = network.tensors.count + k
            let modes = step.resultModes.filter { !removed.contains($0) }
            var contraction: Contraction
            if let output, output.step == k {
                contraction = Contraction(output.view, a, b, alpha: output.alpha, accumulate: output.accumulate)
            } else {
                let order = chooseOrder(modes, a, b, consumerStep: consumer(of: id), id: id, views: views, removed: removed)
                let view = place(name(k), order, order.map { network.extent($0) })
                contraction = Contraction(view, a, b, accumulate: false)
            }
            let legal = NetworkLowering.legalize(contraction, place: place)
            for copy in legal.dropLast() { result.append((-1, copy)) }
            contraction = legal.last!
            views[id] = contraction.output
            result.append((id, contraction))
        }
        return result
    }

    /// `contraction` as steps that lower: itself when it does; otherwise with
    /// its operands copied into the order BLAS takes (the output's kept modes
    /// then the summed ones), and as a last resort computed into a row-major
    /// temporary that is then added to the output. Copies cost bytes, so the
    /// planner chooses layouts that avoid them (`chooseOrder`).
    static func legalize(_ contraction: Contraction,
                         place: (_ name: String, _ modes: [String], _ extents: [Extent]) -> TensorView) -> [Contraction] {
        if contraction.lowered != nil { return [contraction] }
        var steps: [Contraction] = []
        var c = contraction
        if let b = c.b {
            let summed = c.summedModes, batch = c.batchModes
            for side in 0..<2 {
                let operand = side == 0 ? c.a : b
                // Batch modes outermost (they become loops), then rows and the sum as BLAS reads them.
                let kept = c.output.modes.filter { operand.modes.contains($0) && !batch.contains($0) }
                let order = batch + (side == 0 ? kept + summed : summed + kept)
                let copy = place("\(operand.name)ᵀ", order, order.map { operand.extent(of: $0)! })
                steps.append(Contraction(copy, operand, nil, accumulate: false))
                if side == 0 { c.a = copy } else { c.b = copy }
                if c.lowered != nil {
                    PlanVerifier.assertValid(steps + [c], after: "legalize")
                    return steps + [c]
                }
            }
            let order = batch + c.output.modes.filter { c.a.modes.contains($0) && !batch.contains($0) }
                + c.output.modes.filter { !c.a.modes.contains($0) }
            let temporary = place("\(c.output.name)ᵀ", order, order.map { c.output.extent(of: $0)! })
            let product = Contraction(temporary, c.a, c.b, alpha: c.alpha, accumulate: false)
            let add = Contraction(c.output, temporary, nil, accumulate: c.accumulate)
            PlanVerifier.assertValid(steps + [product, add], after: "legalize")
            precondition(product.lowered != nil && add.lowered != nil,
                         "internal error: step \(contraction) does not lower even after copies: "
                         + [contraction.output, contraction.a, b].map { "\($0) strides \($0.strides)" }.joined(separator: "; "))
            return steps + [product, add]
        }
        preconditionFailure("internal error: copy \(contraction) does not lower")
    }

    /// The result's mode order: blocks of batch, row (a's order) and column
    /// (b's order) modes in the arrangement that lowers without loops here and
    /// keeps the modes the next step sums over together.
    private func chooseOrder(_ modes: [String], _ a: TensorView, _ b: TensorView, consumerStep: Int?, id: Int,
                             views: [Int: TensorView], removed: Set<String>) -> [String] {
        let batch = modes.filter { a.modes.contains($0) && b.modes.contains($0) }
        let rows = a.modes.filter { modes.contains($0) && !batch.contains($0) }
        let columns = b.modes.filter { modes.contains($0) && !batch.contains($0) }
        // Each block in its operand's order, or in the network's canonical order.
        let canonical = canonicalOrder
        func sorted(_ block: [String]) -> [String] { block.sorted { canonical[$0, default: .max] < canonical[$1, default: .max] } }
        var candidates: [[String]] = []
        for (b, r, c) in [(batch, rows, columns), (sorted(batch), sorted(rows), sorted(columns))] {
            candidates += [b + r + c, b + c + r, r + b + c, c + b + r, r + c + b, c + r + b]
        }
        // Modes the consumer sums over, and the view of its other operand when known.
        var summed: [String] = []
        var partner: TensorView?
        if let c = consumerStep {
            let step = steps[c]
            let other = step.left == id ? step.right : step.left
            let otherModes = views[other]?.modes ?? modesOf(other).filter { !removed.contains($0) }
            let kept = Set(step.resultModes)
            summed = modes.filter { otherModes.contains($0) && !kept.contains($0) }
            partner = views[other]
        }
        var best: (score: Int, order: [String])?
        for order in candidates {
            let view = TensorView("t", in: .workspace, modes: order, extents: order.map { network.extent($0) })
            var score = 0
            switch Contraction(view, a, b, accumulate: false).lowered {
            case .gemm(let g)?: score += 10 * g.loops.count
            case .elementwise?: break
            case nil: score += 1000
            }
            if !summed.isEmpty {
                // Summed modes adjacent and in the partner's order: one merged k.
                let positions = summed.map { order.firstIndex(of: $0)! }
                if positions.max()! - positions.min()! != summed.count - 1 { score += 5 }
                if let partner {
                    let inPartner = summed.sorted { partner.modes.firstIndex(of: $0)! < partner.modes.firstIndex(of: $1)! }
                    if inPartner != summed.sorted(by: { order.firstIndex(of: $0)! < order.firstIndex(of: $1)! }) { score += 3 }
                }
            }
            // Then the fewest inversions against the canonical order (ΔW's row-major out…, in…).
            for (p, u) in order.enumerated() {
                for v in order[(p + 1)...] where canonical[u, default: .max] > canonical[v, default: .max] { score += 1 }
            }
            if best == nil || score < best!.score { best = (score, order) }
        }
        return best!.order
    }

    /// Rank of each mode in the order results are stored in: the network's
    /// output modes first, then the rest in order of appearance.
    var canonicalOrder: [String: Int] {
        var rank: [String: Int] = [:]
        for mode in network.outputModes + network.tensors.flatMap(\.modes) where rank[mode] == nil { rank[mode] = rank.count }
        return rank
    }

    /// Modes of an SSA value as the network names them.
    func modesOf(_ id: Int) -> [String] {
        id < network.tensors.count ? network.tensors[id].modes : steps[id - network.tensors.count].resultModes
    }

    /// Groups contractions (in order) into stages: each goes one stage after
    /// the latest earlier contraction it depends on (reads what that one writes,
    /// writes what it reads or writes), so a stage's members are independent.
    static func stages(_ contractions: [Contraction]) -> [[Contraction]] {
        var stages: [[Contraction]] = []
        var placed: [(c: Contraction, stage: Int)] = []
        for c in contractions {
            var level = 0
            for p in placed where conflicts(p.c, c) { level = max(level, p.stage + 1) }
            if level == stages.count { stages.append([]) }
            stages[level].append(c)
            placed.append((c, level))
        }
        PlanVerifier.assertValid(Program(stages), after: "NetworkLowering.stages")
        return stages
    }

    static func conflicts(_ earlier: Contraction, _ later: Contraction) -> Bool {
        let reads = { (c: Contraction) in [c.a] + (c.b.map { [$0] } ?? []) }
        return earlier.output.mayOverlap(later.output) || reads(later).contains { earlier.output.mayOverlap($0) }
            || reads(earlier).contains { later.output.mayOverlap($0) }
    }

    /// The path as data: operands and result of each step with their modes.
    func pathSteps(names: [String], resultName: (Int) -> String, phase: (Int) -> String) -> [PathStep] {
        var labels = network.tensors.enumerated().map { names.count > $0.offset ? names[$0.offset] : $0.element.name }
        var result: [PathStep] = []
        for (k, step) in steps.enumerated() {
            result.append(PathStep(phase: phase(k), left: labels[step.left], leftModes: modesOf(step.left),
                                   right: labels[step.right], rightModes: modesOf(step.right),
                                   result: resultName(k), resultModes: step.resultModes))
            labels.append(resultName(k))
        }
        return result
    }
}
