import AdaptRuntime

/// Plans a tensor-train, CP or Tucker group from its contraction network
/// (DESIGN §2). One network holds the stored cores/factors, the token rows
/// `x[n, layer, in…]` and the output `y[n, layer, module, out…]`, so a single
/// path search prices everything one step costs: work shared by all pairs
/// (a product of cores without layer or module) is counted once, per-layer
/// work once per layer, and the rest for every pair. The path then splits by
/// itself: steps that do not touch `x` form `prepare` (hoisted, stored as
/// prepared state), the others are the per-call token side. Nothing here
/// knows which order is good for which structure: a bond that separates in-
/// from out-modes comes out as a LoRA of that rank because that is cheapest,
/// and materialising ΔW in prepare wins only when its cost says so.
///
/// Backward is the VJP of each token-side contraction (`VJP`), finishBackward
/// the VJP of prepare; materialize contracts what the token side reads.
enum TensorPlanner {
    struct Planned {
        var group: GroupPlan
        var workspace: Extent
    }

    static func plan(_ group: ResolvedGroup, layout: inout ParameterLayout, prepared: inout Int,
                     sharedInput: Bool, model: CostModel) -> Planned {
        let structure = StructureNetwork(group)
        let stored = structure.factors.map { layout.add($0.name, modes: $0.axes, shape: $0.shape, trainable: group.isTrainable(carrying: $0.carries)) }
        let shortNames = structure.factors.map { String($0.key.dropFirst(group.name.count + 1)) }
        let scale = Float(group.scale(layer: group.layers[0], module: group.modules[0].name))
        let layer = structure.layerMode, module = structure.moduleMode
        let removed = Set([layer, module].compactMap { $0 })

        // The network: stored tensors, then x.
        let xModes = ["n"] + [layer].compactMap { $0 } + (sharedInput ? [] : [module].compactMap { $0 }) + structure.inModes
        let yModes = ["n"] + [layer, module].compactMap { $0 } + structure.outModes
        var extents: [String: Extent] = ["n": .tokens]
        for (mode, size) in structure.extents { extents[mode] = .fixed(size) }
        let tensors = zip(shortNames, structure.factors).map { TensorNetwork.Tensor($0.0, $0.1.modes) } + [TensorNetwork.Tensor("x", xModes)]
        let network = TensorNetwork(tensors, output: yModes, extents: extents, slicedModes: removed)
        let xId = structure.factors.count
        let optimizer = PathOptimizers.automatic(for: network)
        let path = optimizer.path(for: network, model: model)
        let lowering = NetworkLowering(network, path: path.steps, model: model)
        let count = network.tensors.count
        let touchesTokens = lowering.steps.indices.map { lowering.leaves(of: count + $0).contains(xId) }
        let prepareSteps = lowering.steps.indices.filter { !touchesTokens[$0] }
        let tokenSteps = lowering.steps.indices.filter { touchesTokens[$0] }
        let last = lowering.steps.count - 1
        func stepName(_ k: Int) -> String { touchesTokens[k] ? "t\(k + 1)" : "P\(k + 1)" }

        // Prepare: full tensors (layer and module kept), in prepared storage.
        var parameterViews: [Int: TensorView] = [:]
        for (i, factor) in structure.factors.enumerated() {
            parameterViews[i] = structure.view(factor, offset: stored[i].offset, storage: .parameters, name: shortNames[i])
        }
        var full = parameterViews
        let preparedState = RegionAllocator(.prepared, from: .fixed(prepared))
        let prepareLowered = lowering.lower(prepareSteps, views: &full, output: nil, name: stepName, place: preparedState.place)
        prepared = preparedState.end.constant
        let prepareContractions = prepareLowered.map(\.contraction)
        // Gradients of prepared state live beside it; copies the VJP needs take workspace.
        let finishScratch = RegionAllocator(.workspace)
        let finishBackward = VJP.backward(of: prepareContractions, workspace: finishScratch.place)

        // The token side for one pair: everything sliced at (layer, module).
        let xView = TensorView("x", in: .input, modes: ["n"] + structure.inModes,
                               extents: [.tokens] + structure.inModes.map { .fixed(structure.extent($0)) })
        let yShape = ["n"] + structure.outModes
        let yExtents: [Extent] = [.tokens] + structure.outModes.map { .fixed(structure.extent($0)) }
        // What the token side reads besides x: stored tensors and prepared results.
        let frontier = Set(tokenSteps.flatMap { [lowering.steps[$0].left, lowering.steps[$0].right] })
            .filter { $0 != xId && !(($0 >= count) && touchesTokens[$0 - count]) }.sorted()

        var pairs: [PairPlan] = []
        var layerForwards: [LayerForward] = []
        var layerBackwards: [LayerForward] = []
        var workspace = finishScratch.end
        for (li, l) in group.layers.enumerated() {
            func slice(_ view: TensorView, moduleIndex: Int?) -> TensorView {
                var v = view
                if let layer { v = v.fixing(layer, at: li) }
                if let module, let mi = moduleIndex { v = v.fixing(module, at: mi) }
                return v
            }
            for (mi, m) in group.modules.enumerated() {
                // Forward.
                var views: [Int: TensorView] = [xId: xView]
                for id in frontier { views[id] = slice(full[id]!, moduleIndex: mi) }
                let scratch = RegionAllocator(.workspace)
                let y = TensorView("y", in: .output, modes: yShape, extents: yExtents)
                let forwardSteps = lowering.lower(tokenSteps, views: &views, removing: removed,
                                                  output: (last, y, scale, true), name: stepName, place: scratch.place).map(\.contraction)
                let forward = Program(NetworkLowering.stages(forwardSteps))
                // Backward: recompute the token intermediates, then the VJP of every step.
                let backward = Derivation.backward(of: forwardSteps, place: scratch.place)
                workspace = .atLeast(workspace, scratch.end)
                // Materialize: contract what the token side reads.
                scratch.reset()
                let delta = TensorView("ΔW", in: .delta, modes: structure.outModes + structure.inModes,
                                       extents: (structure.outModes + structure.inModes).map { .fixed(structure.extent($0)) })
                let materialize = Derivation.materialize(frontier.map { ($0 < count ? network.tensors[$0].name : stepName($0 - count), views[$0]!) },
                                                     delta: delta, scale: scale, model: model, place: scratch.place)
                workspace = .atLeast(workspace, scratch.end)
                pairs.append(PairPlan(layer: l, module: m.name, outFeatures: m.outFeatures, inFeatures: m.inFeatures,
                                      rank: group.effectiveRank, scale: Double(scale),
                                      forward: forward, backward: backward, materialize: materialize))
            }
            // Layer-fused forward: modules reading one x share every step that does not depend on the module.
            if sharedInput && group.modules.count > 1, let module {
                let scratch = RegionAllocator(.workspace)
                var shared: [Int: TensorView] = [xId: xView]
                for id in frontier { shared[id] = slice(full[id]!, moduleIndex: nil) }
                var perModule: [Int: [TensorView]] = [:]
                var steps: [Contraction] = []
                for k in tokenSteps {
                    let step = lowering.steps[k], id = count + k
                    let operands = [step.left, step.right]
                    let byModule = step.resultModes.contains(module)
                        || operands.contains { perModule[$0] != nil || shared[$0]?.modes.contains(module) == true }
                    if !byModule {
                        steps += lowering.lower([k], views: &shared, removing: removed, output: nil, name: stepName, place: scratch.place).map(\.contraction)
                        continue
                    }
                    var results: [TensorView] = []
                    for (mi, _) in group.modules.enumerated() {
                        var views: [Int: TensorView] = [:]
                        for op in operands {
                            views[op] = perModule[op]?[mi] ?? shared[op]!.fixing(module, at: mi)
                        }
                        let y = TensorView("y\(mi)", in: .output, slot: mi, modes: yShape, extents: yExtents)
                        steps += lowering.lower([k], views: &views, removing: removed, output: k == last ? (last, y, scale, true) : nil,
                                                name: { "\(stepName($0))[\(mi)]" }, place: scratch.place).map(\.contraction)
                        results.append(views[id]!)
                    }
                    perModule[id] = results
                }
                layerForwards.append(LayerForward(layer: l, modules: group.modules.map(\.name), program: Program(NetworkLowering.stages(steps))))
                layerBackwards.append(LayerForward(layer: l, modules: group.modules.map(\.name),
                                                   program: Derivation.backward(of: steps, place: scratch.place)))
                workspace = .atLeast(workspace, scratch.end)
            }
        }

        var text = ["\(network.tensors.count)-tensor network \(network), path by \(optimizer.name) search"
                    + (optimizer.name == "optimal" ? "" : " (more than \(OptimalPath.maximumTensors) tensors: exact search skipped)")]
        let steps = lowering.pathSteps(names: network.tensors.map(\.name), resultName: { $0 == last ? "y" : stepName($0) },
                                       phase: { touchesTokens[$0] ? "token" : "prepare" })
        for step in steps { text.append((step.phase == "token" ? "token:   " : "prepare: ") + step.description) }
        var planned = GroupPlan(name: group.name, structure: group.structure.rawValue, pairs: pairs, layerForwards: layerForwards,
                                prepare: Program(NetworkLowering.stages(prepareContractions)),
                                finishBackward: Program(NetworkLowering.stages(finishBackward)), path: text)
        planned.layerBackwards = layerBackwards
        planned.steps = steps
        planned.modeOrder = group.modes.map(\.name.description)
        planned.modes = Dictionary(uniqueKeysWithValues: group.modes.map { ($0.name.description, $0.size) })
        switch group.ranks {
        case .tensorTrain(let bonds): planned.ranks = bonds
        case .cp(let r): planned.ranks = [r]
        case .tucker(let rs): planned.ranks = rs.enumerated().map { $0.element ?? group.modes[$0.offset].size }
        case .lora(let r): planned.ranks = [r]
        }
        planned.optimizer = optimizer.name
        return Planned(group: planned, workspace: workspace)
    }
}
