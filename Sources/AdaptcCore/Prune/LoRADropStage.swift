import AdaptRuntime

/// The prune stage of a lora group (DESIGN §4): LoRA-drop (AdaptRuntime's
/// `LoRADropPruner`) on its pairs, the decisions and the pruned weights.
public enum LoRADropStage: GroupPruner {
    static func run(_ group: ResolvedGroup, plan: Plan, adapter: PlanInterpreter, calibration: CalibrationSet,
                    settings: PruneSettings, taken: Set<String>, weights: inout [String: [Float]]) -> GroupPruning {
        let options = LoRADropPruner.Options(threshold: settings.threshold, layerLevel: settings.levels.contains(.layer),
                                             rankLevel: settings.levels.contains(.rank), globalScope: settings.scope == .global,
                                             threads: adapter.storage.threads)
        let inputs = group.pairs.map { pair in
            let rows = calibration.rows[pair.key]!
            return LoRADropPruner.PairInput(
                layer: pair.layer, module: pair.module, factors: factors(group, pair, plan, adapter),
                alpha: group.alpha(layer: pair.layer, module: pair.module), rsLoRA: group.group.scaling == .rslora,
                x: rows.x, rows: rows.count)
        }
        let pruning = group.group.shared ? pruneShared(group, inputs, options, &weights)
            : prunePlain(group, inputs, options, taken, &weights)
        // DoRA: rank level truncates B·A and keeps each pair's magnitude m as it is
        // (importance is LoRA's output energy of s·B·A; layer level is refused before this).
        if group.group.dora {
            for p in plan.parameters(of: group.name) {
                guard case .magnitude? = p.name?.role else { continue }
                weights[p.key] = PruneStage.values(p, adapter)
            }
        }
        return pruning
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
        return LoRAFactors(a: PruneStage.values(.loraA(group.name, block, pair.module), plan, adapter),
                           b: PruneStage.values(.loraB(group.name, block, pair.module), plan, adapter),
                           rank: group.rank(layer: pair.layer, module: pair.module),
                           outFeatures: module.outFeatures, inFeatures: module.inFeatures,
                           scale: group.scale(layer: pair.layer, module: pair.module))
    }

    /// The new `overrides:` (first line without indent, the rest indented two
    /// more), or nil when the group's ranks did not change and its overrides stay as written.
    static func overrideLines(_ group: ResolvedGroup, _ pruning: GroupPruning, _ settings: PruneSettings) -> [String]? {
        guard !group.group.shared else { return nil }
        let changed = pruning.pairs.contains { $0.rankAfter != nil && $0.rankAfter != $0.rankBefore }
        let droppedOverride = group.group.overrides.contains { pruning.droppedLayers.contains($0.layer) }
        guard changed || droppedOverride else { return nil }
        var entries: [String] = []
        for p in pruning.pairs {
            guard let rank = p.rankAfter else { continue }
            let alpha = group.group.overrides.first { $0.layer == p.pair.layer && $0.module == p.pair.module }?.alpha
            guard rank != group.effectiveRank || alpha != nil else { continue }
            var fields: [String] = []
            if rank != group.effectiveRank { fields.append("rank: \(rank)") }
            if let alpha { fields.append("alpha: \(PrunedSpecText.number(alpha))") }
            var comment = ""
            if p.vanished {
                comment = "  # no component kept (global scope): B = 0"
            } else if rank != p.rankBefore {
                let kept = p.importance > 0 ? 1 - p.lostEnergy / p.importance : 1
                comment = "  # LoRA-drop: \(rank) of \(p.rankBefore) components, \(PrunedSpecText.percent(kept)) of its output energy"
            }
            entries.append("  \"\(p.pair.key)\": {\(fields.joined(separator: ", "))}\(comment)")
        }
        if entries.isEmpty { return [] }
        return ["overrides:  # ranks from LoRA-drop (threshold \(PrunedSpecText.number(settings.threshold)), scope \(settings.scope.rawValue))"] + entries
    }
}
