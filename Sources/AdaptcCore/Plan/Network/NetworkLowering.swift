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
            var a = views[step.left]!, b = views[step.right]!
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
            if contraction.lowered == nil {
                // Last resort: copy operands into a row-major order BLAS takes (costs bytes).
                for side in 0..<2 {
                    let operand = side == 0 ? a : b
                    let summed = contraction.summedModes
                    let kept = operand.modes.filter { !summed.contains($0) }
                    let order = side == 0 ? kept + summed : summed + kept
                    let copy = place("\(operand.name)ᵀ", order, order.map { operand.extent(of: $0)! })
                    result.append((-1, Contraction(copy, operand, nil, accumulate: false)))
                    if side == 0 { a = copy } else { b = copy }
                    contraction.a = a
                    contraction.b = b
                    if contraction.lowered != nil { break }
                }
                precondition(contraction.lowered != nil, "internal error: step \(contraction) does not lower even after copies")
            }
            views[id] = contraction.output
            result.append((id, contraction))
        }
        return result
    }

    /// The result's mode order: blocks of batch, row (a's order) and column
    /// (b's order) modes in the arrangement that lowers without loops here and
    /// keeps the modes the next step sums over together.
    private func chooseOrder(_ modes: [String], _ a: TensorView, _ b: TensorView, consumerStep: Int?, id: Int,
                             views: [Int: TensorView], removed: Set<String>) -> [String] {
        let batch = modes.filter { a.modes.contains($0) && b.modes.contains($0) }
        let rows = a.modes.filter { modes.contains($0) && !batch.contains($0) }
        let columns = b.modes.filter { modes.contains($0) && !batch.contains($0) }
        let candidates = [batch + rows + columns, batch + columns + rows, rows + batch + columns,
                          columns + batch + rows, rows + columns + batch, columns + rows + batch]
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
            if best == nil || score < best!.score { best = (score, order) }
        }
        return best!.order
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
        return stages
    }

    static func conflicts(_ earlier: Contraction, _ later: Contraction) -> Bool {
        let reads = { (c: Contraction) in [c.a] + (c.b.map { [$0] } ?? []) }
        return earlier.output.mayOverlap(later.output) || reads(later).contains { earlier.output.mayOverlap($0) }
            || reads(earlier).contains { later.output.mayOverlap($0) }
    }

    /// The path in words, e.g. `x[n,i]·A[r,i] → z[n,r]; z[n,r]·B[o,r] → y[n,o]`.
    func describe(names: [String], resultName: (Int) -> String) -> String {
        var labels = network.tensors.enumerated().map { "\(names.count > $0.offset ? names[$0.offset] : $0.element.name)[\($0.element.modes.joined(separator: ","))]" }
        var parts: [String] = []
        for (k, step) in steps.enumerated() {
            let result = "\(resultName(k))[\(step.resultModes.joined(separator: ","))]"
            parts.append("\(labels[step.left])·\(labels[step.right]) → \(result)")
            labels.append(result)
        }
        return parts.joined(separator: "; ")
    }
}
