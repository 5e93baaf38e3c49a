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
        let setOf = { (module: String) in InputSets.index(of: module, in: inputSets) }
        let blocks: [(TensorKey.Block, [Int])] = group.group.shared
            ? [(.shared, group.layers)]
            : group.layers.map { (.layer($0), [$0]) }
        var pairs: [PairPlan] = []
        var fused: [LayerForward] = []
        var fusedBackward: [LayerForward] = []
        var workspace = Extent(0)
        // Distinct forward paths in first-seen order, with how many pairs take each.
        var paths: [(text: String, pairs: Int)] = []
        var searches: [[Int]: (optimizer: String, path: ContractionPath)] = [:]
        var firstSteps: [PathStep] = []
        // With tasks (DESIGN §2 "Tasks"): the first task's tensors are planned as a
        // group without tasks would be; the other tasks' follow, each laid out the
        // same (task-major), so task t's tensor is the first's moved by t·taskBlock.
        let firstTask = group.tasks.first
        let start = layout.count, firstTensor = layout.tensors.count
        for (label, layers) in blocks {
            // Shared blocks take the group rank; overrides only exist when not shared.
            let rankOf = { (m: ModelModule) in group.rank(layer: layers[0], module: m.name) }
            // A carries `in`, B `out`; both the module and (unless shared) the layer (`train:`, DESIGN §3).
            let carried: [ModeName] = (group.group.shared ? [] : [.layer]) + [.module] + (group.tasks.isEmpty ? [] : [.task])
            let a = group.modules.map { m in
                layout.add(.loraA(group.name, label, m.name, task: firstTask), modes: ["r", "in"], shape: [rankOf(m), m.inFeatures],
                           trainable: group.isTrainable(carrying: carried + [.in]))
            }
            let b = group.modules.map { m in
                layout.add(.loraB(group.name, label, m.name, task: firstTask), modes: ["out", "r"], shape: [m.outFeatures, rankOf(m)],
                           trainable: group.isTrainable(carrying: carried + [.out]))
            }
            // DoRA: one magnitude vector m [out] per pair, after the layer's B's
            // (so the A's stay adjacent). Check refuses dora with shared.
            let magnitudes: [ParameterTensor]? = group.group.dora
                ? group.modules.map { m in
                    layout.add(TensorKey(group: group.name, role: .magnitude(layer: layers[0], module: m.name)), modes: ["out"],
                               shape: [m.outFeatures])
                }
                : nil
            for layer in layers {
                var members: [(module: ModelModule, a: ParameterTensor, b: ParameterTensor, scale: Float)] = []
                for (index, module) in group.modules.enumerated() {
                    let scale = group.scale(layer: layer, module: module.name)
                    let factors = Factors(a: a[index], b: b[index], scale: Float(scale))
                    // Pairs of one shape share one search (the network differs only in where A and B sit).
                    let shape = [factors.rank, module.inFeatures, module.outFeatures]
                    let search = searches[shape] ?? factors.search(model: model)
                    searches[shape] = search
                    let programs = factors.programs(search, model: model)
                    if firstSteps.isEmpty { firstSteps = programs.steps }
                    var pair = PairPlan(
                        layer: layer, module: module.name, outFeatures: module.outFeatures,
                        inFeatures: module.inFeatures, rank: factors.rank, scale: scale,
                        forward: programs.forward, backward: programs.backward, materialize: programs.materialize)
                    pair.dora = magnitudes.map { DoRAPlan(a: a[index], b: b[index], magnitude: $0[index]) }
                    pairs.append(pair)
                    workspace = .atLeast(workspace, programs.workspace)
                    if let i = paths.firstIndex(where: { $0.text == programs.path }) {
                        paths[i].pairs += 1
                    } else {
                        paths.append((programs.path, 1))
                    }
                    members.append((module, a[index], b[index], Float(scale)))
                }
                // Runs of consecutive modules that read one input (model.inputs) share x·[A₁; A₂; …]ᵀ.
                // DoRA pairs rescale their own rows after it, so they run one by one.
                var start = group.group.dora ? members.count : 0
                while start < members.count {
                    var end = start + 1
                    let set = setOf(members[start].module.name)
                    while set != nil && end < members.count && setOf(members[end].module.name) == set { end += 1 }
                    if end - start >= 2 {
                        let run = Array(members[start..<end])
                        let forward = stackedForward(run.map { ($0.a, $0.b, $0.scale) })
                        fused.append(LayerForward(layer: layer, modules: run.map(\.module.name), program: forward))
                        // Its VJP: z recomputed once, dz of all modules, then one dx and one stacked dA.
                        let scratch = RegionAllocator(.workspace, from: Extent.tokens * run.map(\.a.shape[0]).reduce(0, +))
                        let backward = Derivation.backward(of: forward.contractions, place: scratch.place)
                        fusedBackward.append(LayerForward(layer: layer, modules: run.map(\.module.name), program: backward))
                        workspace = .atLeast(workspace, scratch.end)
                    }
                    start = end
                }
            }
        }
        let taskBlock = layout.count - start
        let first = Array(layout.tensors[firstTensor...])
        for task in group.tasks.dropFirst() {
            for tensor in first {
                _ = layout.add(tensor.name!.forTask(task), modes: tensor.modes ?? [], shape: tensor.shape, trainable: tensor.trainable)
            }
        }
        let path = paths.map { paths.count == 1 ? $0.text : "\($0.pairs) pairs: \($0.text)" } + [
            fused.isEmpty ? "no modules share an input (model.inputs): each pair runs alone"
                : "modules of a layer that read one input (model.inputs): one GEMM x·[A₁; …; A_M]ᵀ, then one B product each",
            "n = 1 runs as GEMV",
        ] + (group.group.dora
            ? ["DoRA: y ← (m / ‖W + s·B·A‖_row) ⊙ (x·Wᵀ + s·x·Aᵀ·Bᵀ) in place, the row norms prepared from the base W"]
            : [])
        var planned = GroupPlan(name: group.name, structure: group.structure.rawValue, pairs: pairs,
                                layerForwards: fused, path: path)
        planned.layerBackwards = fusedBackward
        planned.steps = firstSteps
        if !group.tasks.isEmpty {
            planned = planned.indexingTasks { $0.storage == .parameters || $0.storage == .gradients ? taskBlock : nil }
            planned.groupTasks = group.tasks
            planned.path.append("tasks \(group.tasks.joined(separator: ", ")): one (A, B) per task, layer and module, "
                                + "task-major; a call runs each pair once per task present, on that task's rows")
        }
        planned.ranks = [group.effectiveRank]
        // Every distinct optimizer the shapes used, sorted: a dictionary's first
        // value would depend on its hash seed.
        let optimizers = Set(searches.values.map(\.optimizer)).sorted()
        planned.optimizer = optimizers.isEmpty ? "optimal" : optimizers.joined(separator: ", ")
        return (planned, workspace)
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

/// The matrices of one pair and its three programs: forward from the path
/// search over `x·A·B`, backward and materialize derived from it (`Derivation`).
private struct Factors {
    let x, y, a, b, delta: TensorView
    let scale: Float
    let rank: Int

    init(a aTensor: ParameterTensor, b bTensor: ParameterTensor, scale: Float) {
        let r = aTensor.shape[0], inFeatures = aTensor.shape[1], outFeatures = bTensor.shape[0]
        rank = r
        self.scale = scale
        let n = Extent.tokens, fixed = Extent.fixed
        x = TensorView("x", in: .input, indices: ("n", "i"), shape: (n, fixed(inFeatures)))
        y = TensorView("y", in: .output, indices: ("n", "o"), shape: (n, fixed(outFeatures)))
        a = TensorView("A", in: .parameters, offset: fixed(aTensor.offset), indices: ("r", "i"), shape: (fixed(r), fixed(inFeatures)))
        b = TensorView("B", in: .parameters, offset: fixed(bTensor.offset), indices: ("o", "r"), shape: (fixed(outFeatures), fixed(r)))
        delta = TensorView("ΔW", in: .delta, indices: ("o", "i"), shape: (fixed(outFeatures), fixed(inFeatures)))
    }

    /// The token-side network `x[n,i]·A[r,i]·B[o,r] → y[n,o]`.
    var network: TensorNetwork {
        TensorNetwork([.init("x", ["n", "i"]), .init("A", ["r", "i"]), .init("B", ["o", "r"])], output: ["n", "o"],
                      extents: ["n": .tokens, "i": x.extents[1], "r": a.extents[0], "o": b.extents[0]])
    }

    /// The cheapest order by the cost model: for any rank below in·out/(in+out)
    /// the two skinny products through z[n,r]; for tiny modules forming ΔW
    /// first may win (fewer bytes moved).
    func search(model: CostModel) -> (optimizer: String, path: ContractionPath) {
        let optimizer = PathOptimizers.automatic(for: network)
        return (optimizer.name, optimizer.path(for: network, model: model))
    }

    func programs(_ search: (optimizer: String, path: ContractionPath), model: CostModel)
        -> (forward: Program, backward: Program, materialize: Program, workspace: Extent, path: String, steps: [PathStep]) {
        let lowering = NetworkLowering(network, path: search.path.steps, model: model)
        var views: [Int: TensorView] = [0: x, 1: a, 2: b]
        let scratch = RegionAllocator(.workspace)
        let last = lowering.steps.count - 1
        let steps = lowering.lower(Array(lowering.steps.indices), views: &views, output: (last, y, scale, true),
                                   name: { _ in "z" }, place: scratch.place).map(\.contraction)
        let backward = Derivation.backward(of: steps, place: scratch.place)
        var workspace = scratch.end
        scratch.reset()
        let materialize = Derivation.materialize([("A", a), ("B", b)], delta: delta, scale: scale, model: model, place: scratch.place)
        workspace = .atLeast(workspace, scratch.end)
        let data = lowering.pathSteps(names: ["x", "A", "B"], resultName: { $0 == last ? "y" : "z" }, phase: { _ in "token" })
        let text = "forward path (\(search.optimizer), cost model at n = \(model.tokens)): "
            + data.map(\.description).joined(separator: "; ")
        return (Program(NetworkLowering.stages(steps)), backward, materialize, workspace, text, data)
    }
}
