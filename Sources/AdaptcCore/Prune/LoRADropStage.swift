import AdaptRuntime

/// The prune stage for a checked spec and its loaded adapter: runs LoRA-drop
/// (AdaptRuntime's `LoRADropPruner`) on every lora group and collects the
/// decisions and the pruned weights. Tensor-train, tucker and cp groups go to
/// `TTRoundingStage`, `TuckerRoundingStage` and `CPPruningStage`.
public enum LoRADropStage {
    public static func run(_ checked: CheckedSpec, plan: Plan, adapter: PlanInterpreter,
                           calibration: CalibrationSet, settings: PruneSettings) -> PruneResult {
        let options = LoRADropPruner.Options(threshold: settings.threshold, layerLevel: settings.levels.contains(.layer),
                                             rankLevel: settings.levels.contains(.rank), globalScope: settings.scope == .global,
                                             threads: adapter.storage.threads)
        let taken = Set(checked.groups.map(\.name))
        var groups: [GroupPruning] = []
        var weights: [String: [Float]] = [:]
        for group in checked.groups {
            switch group.structure {
            case .tensorTrain:
                groups.append(TTRoundingStage.run(group, plan: plan, adapter: adapter, calibration: calibration, settings: settings,
                                                  taken: taken, weights: &weights))
                continue
            case .tucker:
                groups.append(TuckerRoundingStage.run(group, plan: plan, adapter: adapter, calibration: calibration, settings: settings,
                                                      taken: taken, weights: &weights))
                continue
            case .cp:
                groups.append(CPPruningStage.run(group, plan: plan, adapter: adapter, calibration: calibration, settings: settings,
                                                 taken: taken, weights: &weights))
                continue
            case .lora:
                break
            }
            let inputs = group.pairs.map { pair in
                let rows = calibration.rows[pair.key]!
                return LoRADropPruner.PairInput(
                    layer: pair.layer, module: pair.module, factors: factors(group, pair, plan, adapter),
                    alpha: group.alpha(layer: pair.layer, module: pair.module), rsLoRA: group.group.scaling == .rslora,
                    x: rows.x, rows: rows.count)
            }
            if group.group.shared {
                groups.append(pruneShared(group, inputs, options, &weights))
            } else {
                groups.append(prunePlain(group, inputs, options, taken, &weights))
            }
            // DoRA: rank level truncates B·A and keeps each pair's magnitude m as it is
            // (importance is LoRA's output energy of s·B·A; layer level is refused before this).
            if group.group.dora {
                for p in plan.parameters {
                    guard let key = TensorKey(parsing: p.key, structure: "lora"), key.group == group.name,
                          case .magnitude = key.role else { continue }
                    weights[p.key] = values(p.key, plan, adapter)
                }
            }
        }
        return PruneResult(settings: settings, groups: groups, weights: weights)
    }

    private static func prunePlain(_ group: ResolvedGroup, _ inputs: [LoRADropPruner.PairInput], _ options: LoRADropPruner.Options,
                                   _ taken: Set<String>, _ weights: inout [String: [Float]]) -> GroupPruning {
        let rank = group.effectiveRank
        let result = LoRADropPruner.prune(inputs, sharedRank: rank,
                                          sharedScale: ResolvedGroup.scale(alpha: group.group.alpha, rank: rank, scaling: group.group.scaling),
                                          options: options)
        var sharedName: String?
        if !result.droppedLayers.isEmpty {
            var name = group.name + "_shared", suffix = 2
            while taken.contains(name) { name = "\(group.name)_shared\(suffix)"; suffix += 1 }
            sharedName = name
            for (module, f) in result.sharedAdapters {
                weights[TensorKey.loraA(name, .shared, module).description] = f.a
                weights[TensorKey.loraB(name, .shared, module).description] = f.b
            }
        }
        var pairs: [PairPruning] = []
        for (input, r) in zip(inputs, result.pairs) {
            var vanished = false
            if var f = r.factors {
                if f.rank == 0 {
                    // No rank 0 in a spec: one slot with B = 0 is the same zero adapter.
                    vanished = true
                    f = LoRAFactors(a: [Float](repeating: 0, count: f.inFeatures), b: [Float](repeating: 0, count: f.outFeatures),
                                    rank: 1, outFeatures: f.outFeatures, inFeatures: f.inFeatures, scale: input.scale(rank: 1))
                }
                weights[TensorKey.loraA(group.name, .layer(r.layer), r.module).description] = f.a
                weights[TensorKey.loraB(group.name, .layer(r.layer), r.module).description] = f.b
            }
            pairs.append(PairPruning(pair: Pair(layer: r.layer, module: r.module), importance: r.importance,
                                     rankBefore: input.factors.rank, rankAfter: r.factors.map { max($0.rank, 1) },
                                     singularValues: r.singularValues, componentEnergies: r.componentEnergies,
                                     keptComponents: r.keptComponents, lostEnergy: r.lostEnergy, vanished: vanished))
        }
        return GroupPruning(name: group.name, structure: .lora, pruned: true, layerShares: result.layerShares,
                            keptLayers: result.keptLayers, droppedLayers: result.droppedLayers, sharedGroupName: sharedName,
                            sharedRank: nil, pairs: pairs)
    }

    private static func pruneShared(_ group: ResolvedGroup, _ inputs: [LoRADropPruner.PairInput], _ options: LoRADropPruner.Options,
                                    _ weights: inout [String: [Float]]) -> GroupPruning {
        let result = LoRADropPruner.pruneShared(inputs, options: options)
        for m in result.modules {
            weights[TensorKey.loraA(group.name, .shared, m.module).description] = m.factors.a
            weights[TensorKey.loraB(group.name, .shared, m.module).description] = m.factors.b
        }
        let byModule = Dictionary(uniqueKeysWithValues: result.modules.map { ($0.module, $0) })
        // Per-pair figures: importance measured per pair; the module's loss split by the pair's energy share.
        var pairs: [PairPruning] = []
        for input in inputs {
            let m = byModule[input.module]!
            let importance = input.x.withUnsafeBufferPointer { LoRAImportance.outputEnergy(input.factors, x: $0, rows: input.rows) }
            let lost = m.importance > 0 ? m.lostEnergy * importance / m.importance : 0
            pairs.append(PairPruning(pair: Pair(layer: input.layer, module: input.module), importance: importance,
                                     rankBefore: input.factors.rank, rankAfter: result.rank, singularValues: m.singularValues,
                                     componentEnergies: m.componentEnergies, keptComponents: m.keptComponents, lostEnergy: lost, vanished: false))
        }
        let total = pairs.reduce(0) { $0 + $1.importance }
        let layerShares = group.layers.map { l in
            (layer: l, share: total > 0 ? pairs.filter { $0.pair.layer == l }.reduce(0) { $0 + $1.importance } / total : 0)
        }
        return GroupPruning(name: group.name, structure: .lora, pruned: true, layerShares: layerShares, keptLayers: group.layers,
                            droppedLayers: [], sharedGroupName: nil,
                            sharedRank: result.rank == group.effectiveRank ? nil : result.rank, pairs: pairs)
    }

    /// A pair's (A, B) and scale as loaded (the shared ones for a shared group).
    static func factors(_ group: ResolvedGroup, _ pair: Pair, _ plan: Plan, _ adapter: PlanInterpreter) -> LoRAFactors {
        let block: TensorKey.Block = group.group.shared ? .shared : .layer(pair.layer)
        let module = group.module(named: pair.module)!
        return LoRAFactors(a: values(TensorKey.loraA(group.name, block, pair.module).description, plan, adapter),
                           b: values(TensorKey.loraB(group.name, block, pair.module).description, plan, adapter),
                           rank: group.rank(layer: pair.layer, module: pair.module),
                           outFeatures: module.outFeatures, inFeatures: module.inFeatures,
                           scale: group.scale(layer: pair.layer, module: pair.module))
    }

    static func values(_ key: String, _ plan: Plan, _ adapter: PlanInterpreter) -> [Float] {
        guard let tensor = plan.parameter(key) else { preconditionFailure("the plan has no parameter \(key)") }
        return Array(adapter.storage.parameters[tensor.offset..<tensor.offset + tensor.count])
    }
}
