import AdaptRuntime

/// Plans a lora group: per pair `ΔW = s·B·A`, so the token side is the two skinny
/// products `z = x·Aᵀ` then `y += s·z·Bᵀ` (never the dense ΔW: 2·r·(in+out) flops
/// per token instead of 2·in·out).
///
/// Layout: for each layer (once when `shared`), the A of every module, then the B
/// of every module. A layer's A's are then adjacent, so consecutive modules that
/// read the same input (q/k/v, declared by `model.inputs`) stack into one
/// `[Σr, in]` matrix and their input product is one GEMM (`LayerForward`).
enum LoRAPlanner {
    static func plan(_ group: ResolvedGroup, layout: inout ParameterLayout, inputSets: [InputSet],
                     model: CostModel) -> (group: GroupPlan, workspace: Extent) {
        let setOf = { (module: String) in inputSets.firstIndex { $0.modules.contains(module) } }
        let blocks: [(String, [Int])] = group.group.shared
            ? [("shared", group.layers)]
            : group.layers.map { (String($0), [$0]) }
        var pairs: [PairPlan] = []
        var fused: [LayerForward] = []
        var workspace = Extent(0)
        // Distinct forward paths in first-seen order, with how many pairs take each.
        var paths: [(text: String, pairs: Int)] = []
        for (label, layers) in blocks {
            // Shared blocks take the group rank; overrides only exist when not shared.
            let rankOf = { (m: ModelModule) in group.rank(layer: layers[0], module: m.name) }
            let a = group.modules.map { m in
                layout.add("\(group.name).\(label).\(m.name).A", shape: [rankOf(m), m.inFeatures])
            }
            let b = group.modules.map { m in
                layout.add("\(group.name).\(label).\(m.name).B", shape: [m.outFeatures, rankOf(m)])
            }
            for layer in layers {
                var members: [(module: ModelModule, a: ParameterTensor, b: ParameterTensor, scale: Float)] = []
                for (index, module) in group.modules.enumerated() {
                    let scale = group.scale(layer: layer, module: module.name)
                    let factors = Factors(a: a[index], b: b[index], scale: Float(scale))
                    let forward = factors.forward(model: model)
                    pairs.append(PairPlan(
                        layer: layer, module: module.name, outFeatures: module.outFeatures,
                        inFeatures: module.inFeatures, rank: factors.rank, scale: scale,
                        forward: forward.program, backward: factors.backward, materialize: factors.materialize))
                    workspace = .atLeast(workspace, forward.workspace)
                    if let i = paths.firstIndex(where: { $0.text == forward.path }) {
                        paths[i].pairs += 1
                    } else {
                        paths.append((forward.path, 1))
                    }
                    workspace = .atLeast(workspace, Extent.tokens * (2 * factors.rank))
                    members.append((module, a[index], b[index], Float(scale)))
                }
                // Runs of consecutive modules that read one input (model.inputs) share x·[A₁; A₂; …]ᵀ.
                var start = 0
                while start < members.count {
                    var end = start + 1
                    let set = setOf(members[start].module.name)
                    while set != nil && end < members.count && setOf(members[end].module.name) == set { end += 1 }
                    if end - start >= 2 {
                        let run = Array(members[start..<end])
                        let forward = stackedForward(run.map { ($0.a, $0.b, $0.scale) })
                        fused.append(LayerForward(layer: layer, modules: run.map(\.module.name), program: forward))
                        workspace = .atLeast(workspace, Extent.tokens * run.map(\.a.shape[0]).reduce(0, +))
                    }
                    start = end
                }
            }
        }
        let path = paths.map { paths.count == 1 ? $0.text : "\($0.pairs) pairs: \($0.text)" } + [
            fused.isEmpty ? "no modules share an input (model.inputs): each pair runs alone"
                : "modules of a layer that read one input (model.inputs): one GEMM x·[A₁; …; A_M]ᵀ, then one B product each",
            "n = 1 runs as GEMV",
        ]
        return (GroupPlan(name: group.name, structure: group.structure.rawValue, pairs: pairs,
                          layerForwards: fused, path: path), workspace)
    }

    /// `y_j += s_j·z[:, slice_j]·B_jᵀ` after `z = x·[A₁; …]ᵀ` (A's adjacent in storage).
    private static func stackedForward(_ run: [(a: ParameterTensor, b: ParameterTensor, scale: Float)]) -> Program {
        let inFeatures = run[0].a.shape[1]
        let total = run.map { $0.a.shape[0] }.reduce(0, +)
        let x = MatrixView("x", in: .input, indices: ("n", "i"), shape: (.tokens, .fixed(inFeatures)))
        let stacked = MatrixView("A[stacked]", in: .parameters, offset: .fixed(run[0].a.offset),
                                 indices: ("R", "i"), shape: (.fixed(total), .fixed(inFeatures)))
        let z = MatrixView("z", in: .workspace, indices: ("n", "R"), shape: (.tokens, .fixed(total)))
        var column = 0
        var second: [Contraction] = []
        for (slot, member) in run.enumerated() {
            let rank = member.a.shape[0], outFeatures = member.b.shape[0]
            let slice = MatrixView("z[\(column)..<\(column + rank)]", in: .workspace, offset: .fixed(column),
                                   indices: ("n", "r"), shape: (.tokens, .fixed(rank)), rowStride: .fixed(total))
            let b = MatrixView("B", in: .parameters, offset: .fixed(member.b.offset),
                               indices: ("o", "r"), shape: (.fixed(outFeatures), .fixed(rank)))
            let y = MatrixView("y\(slot)", in: .output, slot: slot, indices: ("n", "o"), shape: (.tokens, .fixed(outFeatures)))
            second.append(Contraction(y, slice, b, alpha: member.scale, accumulate: true))
            column += rank
        }
        return Program([[Contraction(z, x, stacked, accumulate: false)], second])
    }
}

/// The matrices of one pair and its three programs.
private struct Factors {
    let x, y, dx, dy, a, b, gradA, gradB, z, dz, delta: MatrixView
    let scale: Float
    let rank: Int

    init(a aTensor: ParameterTensor, b bTensor: ParameterTensor, scale: Float) {
        let r = aTensor.shape[0], inFeatures = aTensor.shape[1], outFeatures = bTensor.shape[0]
        rank = r
        self.scale = scale
        let n = Extent.tokens, fixed = Extent.fixed
        x = MatrixView("x", in: .input, indices: ("n", "i"), shape: (n, fixed(inFeatures)))
        dx = MatrixView("dx", in: .inputGradient, indices: ("n", "i"), shape: (n, fixed(inFeatures)))
        y = MatrixView("y", in: .output, indices: ("n", "o"), shape: (n, fixed(outFeatures)))
        dy = MatrixView("dy", in: .outputGradient, indices: ("n", "o"), shape: (n, fixed(outFeatures)))
        a = MatrixView("A", in: .parameters, offset: fixed(aTensor.offset), indices: ("r", "i"), shape: (fixed(r), fixed(inFeatures)))
        b = MatrixView("B", in: .parameters, offset: fixed(bTensor.offset), indices: ("o", "r"), shape: (fixed(outFeatures), fixed(r)))
        gradA = MatrixView("dA", in: .gradients, offset: fixed(aTensor.offset), indices: ("r", "i"), shape: (fixed(r), fixed(inFeatures)))
        gradB = MatrixView("dB", in: .gradients, offset: fixed(bTensor.offset), indices: ("o", "r"), shape: (fixed(outFeatures), fixed(r)))
        z = MatrixView("z", in: .workspace, indices: ("n", "r"), shape: (n, fixed(r)))
        dz = MatrixView("dz", in: .workspace, offset: n * r, indices: ("n", "r"), shape: (n, fixed(r)))
        delta = MatrixView("ΔW", in: .delta, indices: ("o", "i"), shape: (fixed(outFeatures), fixed(inFeatures)))
    }

    /// The token-side network `x[n,i]·A[r,i]·B[o,r] → y[n,o]`.
    var network: TensorNetwork {
        TensorNetwork([.init("x", ["n", "i"]), .init("A", ["r", "i"]), .init("B", ["o", "r"])], output: ["n", "o"],
                      extents: ["n": .tokens, "i": x.extents[1], "r": a.extents[0], "o": b.extents[0]])
    }

    /// `y += s·x·ΔWᵀ` in the order the path optimizer finds cheapest; for any
    /// rank below in·out/(in+out) that is the two skinny products through z[n,r].
    /// For tiny modules the cost model may prefer forming ΔW first (fewer bytes
    /// moved); `workspace` is what the chosen path's intermediates take.
    func forward(model: CostModel) -> (program: Program, workspace: Extent, path: String) {
        let network = self.network
        let optimizer = PathOptimizers.automatic(for: network)
        let path = optimizer.path(for: network, model: model)
        let lowering = NetworkLowering(network, path: path.steps, model: model)
        var views: [Int: TensorView] = [0: x, 1: a, 2: b]
        var workspace = Extent(0)
        let last = lowering.steps.count - 1
        let steps = lowering.lower(Array(lowering.steps.indices), views: &views, output: (last, y, scale, true),
                                   name: { _ in "z" }, place: { name, modes, extents in
            let view = TensorView(name, in: .workspace, offset: workspace, modes: modes, extents: extents)
            workspace = workspace + view.count
            return view
        })
        let text = "forward path (\(optimizer.name), cost model at n = \(model.tokens)): "
            + lowering.describe(names: ["x", "A", "B"], resultName: { $0 == last ? "y" : "z" })
        return (Program(NetworkLowering.stages(steps.map(\.contraction))), workspace, text)
    }

    /// dB += s·dyᵀ·z, dz = s·dy·B, then dA += dzᵀ·x, dx += dz·A (z recomputed: cheaper than keeping it).
    var backward: Program {
        Program([
            [Contraction(z, x, a, accumulate: false)],
            [Contraction(dz, dy, b, alpha: scale, accumulate: false), Contraction(gradB, dy, z, alpha: scale, accumulate: true)],
            [Contraction(gradA, dz, x, accumulate: true), Contraction(dx, dz, a, accumulate: true)],
        ])
    }

    var materialize: Program { Program([[Contraction(delta, b, a, alpha: scale, accumulate: false)]]) }
}
