import AdaptRuntime

/// The rank level of `adaptc prune` for a tensor-train group (DESIGN §4):
/// data-weighted TT-rounding (AdaptRuntime's `TTRounding`) of the group's
/// cores with the calibration Gram of each pair, the new bond ranks for the
/// spec's `ranks:` and the rounded cores (alpha kept, the change of scale
/// folded into the last core). Layer level for tensor groups is not done yet:
/// every layer is kept.
public enum TTRoundingStage {
    public static func run(_ group: ResolvedGroup, plan: Plan, adapter: PlanInterpreter, calibration: CalibrationSet,
                           settings: PruneSettings, weights: inout [String: [Float]]) -> GroupPruning {
        guard case .tensorTrain(let bonds) = group.ranks else { preconditionFailure("TTRoundingStage: not a tensor-train group") }
        let modes = group.modes.map(mode)
        let ranks = [1] + bonds + [1]
        let keys = group.modes.indices.map { "\(group.name).core.\($0)" }
        let cores = keys.map { LoRADropStage.values($0, plan, adapter) }
        let moduleNames = group.group.modules
        let inFeatures = group.modules.first!.inFeatures
        var rows: [[Float]] = [], counts: [Int] = []
        for layer in group.layers {
            for module in moduleNames {
                let r = calibration.rows[Pair(layer: layer, module: module).key]!
                rows.append(r.x)
                counts.append(r.count)
            }
        }
        let weighting = TTCalibration(rows: rows, counts: counts, layers: group.layers.count, modules: moduleNames.count,
                                      inFeatures: inFeatures)
        let alpha = group.group.alpha, scaling = group.group.scaling
        let scale = ResolvedGroup.scale(alpha: alpha, rank: group.effectiveRank, scaling: scaling)
        let result = TTRounding.round(cores: cores, ranks: ranks, modes: modes, calibration: weighting, scale: scale,
                                      newScale: { ResolvedGroup.scale(alpha: alpha, rank: $0, scaling: scaling) },
                                      options: .init(threshold: settings.threshold, globalScope: settings.scope == .global))
        for (key, core) in zip(keys, result.cores) { weights[key] = core }

        let rankAfter = result.bondRanks.max() ?? 1
        var pairs: [PairPruning] = []
        for (l, layer) in group.layers.enumerated() {
            for (m, module) in moduleNames.enumerated() {
                let b = l * moduleNames.count + m
                pairs.append(PairPruning(pair: Pair(layer: layer, module: module), importance: result.pairEnergies[b],
                                         rankBefore: group.effectiveRank, rankAfter: rankAfter, singularValues: [],
                                         componentEnergies: [], keptComponents: [], lostEnergy: result.pairLostEnergies[b],
                                         vanished: false))
            }
        }
        let total = result.totalEnergy
        let layerShares = group.layers.enumerated().map { l, layer in
            (layer: layer, share: total > 0 ? (0..<moduleNames.count).reduce(0) { $0 + result.pairEnergies[l * moduleNames.count + $1] } / total : 0)
        }
        var pruning = GroupPruning(name: group.name, structure: .tensorTrain, pruned: true, layerShares: layerShares,
                                   keptLayers: group.layers, droppedLayers: [], sharedGroupName: nil, sharedRank: nil, pairs: pairs)
        let names = group.modes.map(\.name.description)
        pruning.bonds = result.bonds.enumerated().map { j, bond in
            BondPruning(left: Array(names[...j]), right: Array(names[(j + 1)...]), rankBefore: bond.rankBefore,
                        rankAfter: bond.rankAfter, energies: bond.energies, exactWeighting: bond.exactWeighting,
                        lostEnergy: bond.lostEnergy)
        }
        return pruning
    }

    static func mode(_ m: ResolvedMode) -> TTMode {
        switch m.name.kind {
        case .layer: return TTMode(.layer, size: m.size)
        case .module: return TTMode(.module, size: m.size)
        case .out: return TTMode(.out, size: m.size, factor: m.name.factor ?? 0)
        case .in: return TTMode(.in, size: m.size, factor: m.name.factor ?? 0)
        }
    }
}
