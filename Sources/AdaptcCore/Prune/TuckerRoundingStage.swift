import AdaptRuntime

/// The rank level of `adaptc prune` for a Tucker group (DESIGN §4):
/// data-weighted Tucker rounding (AdaptRuntime's `TuckerRounding`) of the
/// group's core and factors with the calibration Gram of each pair, the new
/// per-mode ranks for the spec's `ranks:` and the rounded core and factors
/// (alpha kept, the change of scale folded into the core). Layer level first,
/// as for lora and tensor-train: the kept layers stay (the others' rows of the
/// layer factor, or slices of a full layer mode, are cut) and the dropped ones
/// become `GROUP_shared`.
public enum TuckerRoundingStage: GroupPruner {
    public static func run(_ group: ResolvedGroup, plan: Plan, adapter: PlanInterpreter, calibration: CalibrationSet,
                           settings: PruneSettings, taken: Set<String>, weights: inout [String: [Float]]) -> GroupPruning {
        guard case .tucker(let ranks) = group.ranks else { preconditionFailure("TuckerRoundingStage: not a tucker group") }
        let names = group.modes.map(\.name.description)
        let factors: [[Float]?] = group.modes.indices.map { k in
            ranks[k] == nil ? nil : PruneStage.values(TensorKey(group: group.name, role: .factor(mode: names[k])), plan, adapter)
        }
        let alpha = group.group.alpha, scaling = group.group.scaling
        let scale = ResolvedGroup.scale(alpha: alpha, rank: group.effectiveRank, scaling: scaling)
        let input = TuckerTensor(core: PruneStage.values(TensorKey(group: group.name, role: .tuckerCore), plan, adapter), factors: factors,
                                 modes: group.modes.map(TensorPruning.mode))
        let weighting = TensorPruning.weighting(group, layers: group.layers, calibration: calibration)
        let energies = weighting.pairEnergies(input).map { $0 * scale * scale }
        let layer = TensorPruning.layerLevel(group, energies: energies, weighting: weighting, settings: settings, taken: taken, deltas: {
            input.pairDeltas(layers: weighting.layers, modules: weighting.modules).map { $0.map { $0 * scale } }
        }, weights: &weights)
        let keptLayers = layer.keptIndices.map { group.layers[$0] }
        // The kept layers' tensor; a layer mode of one layer leaves the modes.
        let kept = layer.droppedIndices.isEmpty ? input : input.keepingLayers(layer.keptIndices)
        let keptNames = kept.modes.count == names.count ? names : names.filter { $0 != "layer" }

        // Rank level (after a layer cut alone: threshold 1, only the true ranks).
        let threshold = settings.levels.contains(.rank) ? settings.threshold : 1
        let result = TuckerRounding.round(core: kept.core.map { Float($0) }, factors: kept.factors.map { $0?.map { Float($0) } },
                                          modes: kept.modes,
                                          calibration: TensorPruning.weighting(group, layers: keptLayers, calibration: calibration),
                                          scale: scale, newScale: { ResolvedGroup.scale(alpha: alpha, rank: $0, scaling: scaling) },
                                          options: .init(threshold: threshold, globalScope: settings.scope == .global))
        weights[TensorKey(group: group.name, role: .tuckerCore).description] = result.core
        for (k, u) in result.factors.enumerated() { if let u { weights[TensorKey(group: group.name, role: .factor(mode: keptNames[k])).description] = u } }

        let rankAfter = result.ranks.compactMap { $0 }.max() ?? 1
        var pruning = GroupPruning(name: group.name, structure: .tucker, pruned: true, layerShares: layer.layerShares,
                                   keptLayers: keptLayers, droppedLayers: layer.droppedIndices.map { group.layers[$0] },
                                   sharedGroupName: layer.sharedName, sharedRank: nil,
                                   pairs: TensorPruning.pairs(group, energies: energies, layer: layer,
                                                              keptLost: result.pairLostEnergies, rankAfter: rankAfter))
        pruning.modes = result.modes.enumerated().map { k, mode in
            ModePruning(name: keptNames[k], rankBefore: mode.rankBefore, rankAfter: mode.rankAfter, energies: mode.energies,
                        kept: Array(0..<min(mode.rankAfter ?? 0, mode.energies.count)), exactWeighting: mode.exactWeighting,
                        lostEnergy: mode.lostEnergy)
        }
        // The ranks as the spec gave them, for the modes that are left.
        let before = zip(names, ranks).filter { keptNames.contains($0.0) }.map(\.1)
        pruning.ranksChanged = before != result.ranks || kept.modes.count != names.count
        pruning.expectedRanks = .tucker(result.ranks)
        return pruning
    }

    /// The pruned spec's new `ranks:` as a block mapping, one mode a line with
    /// the energy its cut kept (first line without indent); nil when no rank changed.
    static func rankLines(_ group: ResolvedGroup, _ pruning: GroupPruning, _ settings: PruneSettings) -> [String]? {
        guard !pruning.modes.isEmpty, pruning.ranksChanged else { return nil }
        let total = pruning.totalEnergy
        func kept(_ m: ModePruning) -> String { PrunedSpecText.percent(total > 0 ? 1 - m.lostEnergy / total : 1) }
        var lines = ["ranks:  # data-weighted Tucker rounding (threshold \(PrunedSpecText.number(settings.threshold)), scope \(settings.scope.rawValue)): "
            + "\(PrunedSpecText.percent(pruning.energyKept)) of the group's calibration output energy kept"]
        for m in pruning.modes {
            guard let after = m.rankAfter, let before = m.rankBefore else {
                lines.append("  \(m.name): full  # stays full")
                continue
            }
            let weighting = m.exactWeighting ? "exact" : "coupled: Gram pooled, loss measured"
            lines.append("  \(m.name): \(after)  # was \(before), \(kept(m)) of the output energy kept (\(weighting))")
        }
        return lines
    }
}
