import AdaptRuntime

/// The rank level of `adaptc prune` for a cp group (DESIGN §4): leave-one-out
/// pruning of its rank-1 components (AdaptRuntime's `CPPruning`) on the
/// calibration Gram of each pair, the new `rank:` and the kept columns of every
/// factor (alpha kept, the change of scale folded into the first out factor).
/// Layer level first, as for the other structures: the kept layers keep their
/// rows of the layer factor, the dropped ones become `GROUP_shared`.
public enum CPPruningStage: GroupPruner {
    public static func run(_ group: ResolvedGroup, plan: Plan, adapter: PlanInterpreter, calibration: CalibrationSet,
                           settings: PruneSettings, taken: Set<String>, weights: inout [String: [Float]]) -> GroupPruning {
        guard case .cp(let rank) = group.ranks else { preconditionFailure("CPPruningStage: not a cp group") }
        let names = group.modes.map(\.name.description)
        let modes = group.modes.map(TensorPruning.mode)
        let factors = names.map { PruneStage.values(TensorKey(group: group.name, role: .factor(mode: $0)), plan, adapter) }
        let alpha = group.group.alpha, scaling = group.group.scaling
        let scale = ResolvedGroup.scale(alpha: alpha, rank: rank, scaling: scaling)
        let weighting = TensorPruning.weighting(group, layers: group.layers, calibration: calibration)
        let doubles = factors.map { $0.map(Double.init) }
        let energies = CPPruning.componentGrams(doubles, modes: modes, rank: rank, calibration: weighting).map { $0.reduce(0, +) * scale * scale }
        let layer = TensorPruning.layerLevel(group, energies: energies, weighting: weighting, settings: settings, taken: taken, deltas: {
            CPPruning.pairDeltas(doubles, modes: modes, rank: rank, layers: weighting.layers, modules: weighting.modules).map { $0.map { $0 * scale } }
        }, weights: &weights)
        let keptLayers = layer.keptIndices.map { group.layers[$0] }
        let kept = layer.droppedIndices.isEmpty ? (factors: factors, modes: modes)
            : CPPruning.keepingLayers(layer.keptIndices, factors: factors, modes: modes)
        let keptNames = kept.modes.count == names.count ? names : names.filter { $0 != "layer" }

        let threshold = settings.levels.contains(.rank) ? settings.threshold : 1
        let result = CPPruning.prune(factors: kept.factors, modes: kept.modes,
                                     calibration: TensorPruning.weighting(group, layers: keptLayers, calibration: calibration),
                                     scale: scale, newScale: { ResolvedGroup.scale(alpha: alpha, rank: $0, scaling: scaling) },
                                     threshold: threshold)
        for (k, f) in result.factors.enumerated() { weights[TensorKey(group: group.name, role: .factor(mode: keptNames[k])).description] = f }

        var pruning = GroupPruning(name: group.name, structure: .cp, pruned: true, layerShares: layer.layerShares,
                                   keptLayers: keptLayers, droppedLayers: layer.droppedIndices.map { group.layers[$0] },
                                   sharedGroupName: layer.sharedName, sharedRank: nil,
                                   pairs: TensorPruning.pairs(group, energies: energies, layer: layer,
                                                              keptLost: result.pairLostEnergies, rankAfter: result.rank))
        pruning.modes = [ModePruning(name: "components", rankBefore: rank, rankAfter: result.rank, energies: result.importances,
                                     kept: result.kept, exactWeighting: false, lostEnergy: result.lostEnergy)]
        pruning.ranksChanged = result.rank != rank
        pruning.expectedRanks = .cp(result.rank)
        return pruning
    }

    /// Its components share one rank across the modes (the report and chart say "rank", not one rank per mode).
    static let cutsOneSharedRank = true

    /// The pruned spec's new `rank:` (one line, without indent) with the energy
    /// the cut kept; nil when the rank did not change.
    static func rankLines(_ group: ResolvedGroup, _ pruning: GroupPruning, _ settings: PruneSettings) -> [String]? {
        guard let m = pruning.modes.first, pruning.ranksChanged else { return nil }
        let total = pruning.totalEnergy
        func kept(_ m: ModePruning) -> String { PrunedSpecText.percent(total > 0 ? 1 - m.lostEnergy / total : 1) }
        return ["rank: \(m.rankAfter ?? 1)  # leave-one-out (threshold \(PrunedSpecText.number(settings.threshold))): kept \(m.rankAfter ?? 1) of "
            + "\(m.rankBefore ?? 1) components, \(kept(m)) of the group's calibration output energy"]
    }
}
