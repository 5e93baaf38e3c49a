import AdaptRuntime

/// The rank level of `adaptc prune` for a tensor-train group (DESIGN §4):
/// data-weighted TT-rounding (AdaptRuntime's `TTRounding`) of the group's
/// cores with the calibration Gram of each pair, the new bond ranks for the
/// spec's `ranks:` and the rounded cores (alpha kept, the change of scale
/// folded into the last core). Layer level first, as for lora: the layers
/// kept by importance stay in the train (the others' slices of the layer mode
/// are cut) and the dropped ones become `GROUP_shared`.
public enum TTRoundingStage: GroupPruner {
    public static func run(_ group: ResolvedGroup, plan: Plan, adapter: PlanInterpreter, calibration: CalibrationSet,
                           settings: PruneSettings, taken: Set<String>, weights: inout [String: [Float]]) -> GroupPruning {
        guard case .tensorTrain(let bonds) = group.ranks else { preconditionFailure("TTRoundingStage: not a tensor-train group") }
        var modes = group.modes.map(TensorPruning.mode)
        var names = group.modes.map(\.name.description)
        var ranks = [1] + bonds + [1]
        var cores = group.modes.indices.map { PruneStage.values(TensorKey(group: group.name, role: .core($0)), plan, adapter) }
        let inFeatures = group.modules.first!.inFeatures
        let alpha = group.group.alpha, scaling = group.group.scaling
        let scale = ResolvedGroup.scale(alpha: alpha, rank: group.effectiveRank, scaling: scaling)
        let weighting = TensorPruning.weighting(group, layers: group.layers, calibration: calibration)
        let train = TensorTrain(cores: cores, sizes: modes.map(\.size), ranks: ranks)
        // Contracted core by core: the dense tensor is only formed for the
        // dropped layers' mean ΔW, when the layer level drops any.
        let energies = weighting.pairEnergies(train, modes: modes).map { $0 * scale * scale }
        let layer = TensorPruning.layerLevel(group, energies: energies, weighting: weighting, settings: settings, taken: taken, deltas: {
            TTCalibration.pairDeltas(train.dense(), modes: modes, pairs: weighting.pairCount, inFeatures: inFeatures)
                .map { $0.map { $0 * scale } }
        }, weights: &weights)
        let keptIndices = layer.keptIndices
        let keptLayers = keptIndices.map { group.layers[$0] }
        if !layer.droppedIndices.isEmpty {
            // The dropped layers' slices leave the layer mode; a layer mode of
            // one slice is no mode (DESIGN §2): its matrix joins a neighbour core.
            let k = modes.firstIndex { $0.kind == .layer }!
            let (r0, n, r1) = (ranks[k], modes[k].size, ranks[k + 1])
            var slices: [Float] = []
            for a in 0..<r0 { for j in keptIndices { slices += cores[k][((a * n + j) * r1)..<((a * n + j + 1) * r1)] } }
            if keptIndices.count > 1 {
                cores[k] = slices
                modes[k].size = keptIndices.count
            } else {
                let matrix = slices.map(Double.init)
                if k + 1 < modes.count {
                    let columns = modes[k + 1].size * ranks[k + 2]
                    cores[k + 1] = DenseLinearAlgebra.multiply(matrix, cores[k + 1].map(Double.init), m: r0, n: columns, k: r1).map(Float.init)
                    ranks.remove(at: k + 1)
                } else {
                    let rows = ranks[k - 1] * modes[k - 1].size
                    cores[k - 1] = DenseLinearAlgebra.multiply(cores[k - 1].map(Double.init), matrix, m: rows, n: r1, k: r0).map(Float.init)
                    ranks.remove(at: k)
                }
                cores.remove(at: k)
                modes.remove(at: k)
                names.remove(at: k)
            }
        }

        // Rank level (or, after a layer cut alone, only the canonical form and
        // the true ranks, so every bond is within its new bound).
        let keptWeighting = TensorPruning.weighting(group, layers: keptLayers, calibration: calibration)
        let threshold = settings.levels.contains(.rank) ? settings.threshold : 1
        let result = TTRounding.round(cores: cores, ranks: ranks, modes: modes, calibration: keptWeighting, scale: scale,
                                      newScale: { ResolvedGroup.scale(alpha: alpha, rank: $0, scaling: scaling) },
                                      options: .init(threshold: threshold, globalScope: settings.scope == .global))
        for (k, core) in result.cores.enumerated() { weights[TensorKey(group: group.name, role: .core(k)).description] = core }

        let pairs = TensorPruning.pairs(group, energies: energies, layer: layer, keptLost: result.pairLostEnergies,
                                        rankAfter: result.bondRanks.max() ?? 1)
        var pruning = GroupPruning(name: group.name, structure: .tensorTrain, pruned: true, layerShares: layer.layerShares,
                                   keptLayers: keptLayers, droppedLayers: layer.droppedIndices.map { group.layers[$0] },
                                   sharedGroupName: layer.sharedName, sharedRank: nil, pairs: pairs)
        pruning.bonds = result.bonds.enumerated().map { j, bond in
            BondPruning(left: Array(names[...j]), right: Array(names[(j + 1)...]), rankBefore: bond.rankBefore,
                        rankAfter: bond.rankAfter, energies: bond.energies, exactWeighting: bond.exactWeighting,
                        lostEnergy: bond.lostEnergy)
        }
        pruning.originalBondRanks = bonds
        return pruning
    }

    /// The pruned spec's new `ranks:` as a block list, one bond a line with
    /// the energy its cut kept (first line without indent), or nil when no bond changed.
    static func rankLines(_ group: ResolvedGroup, _ pruning: GroupPruning, _ settings: PruneSettings) -> [String]? {
        guard !pruning.bonds.isEmpty, pruning.bonds.map(\.rankAfter) != pruning.originalBondRanks else { return nil }
        let total = pruning.totalEnergy
        var lines = ["ranks:  # data-weighted TT-rounding (threshold \(PrunedSpecText.number(settings.threshold)), scope \(settings.scope.rawValue)): "
            + "\(PrunedSpecText.percent(pruning.energyKept)) of the group's calibration output energy kept"]
        for (k, bond) in pruning.bonds.enumerated() {
            let kept = total > 0 ? 1 - bond.lostEnergy / total : 1
            let weighting = bond.exactWeighting ? "" : ", Gram pooled across the bond, loss measured"
            lines.append("  - \(bond.rankAfter)  # bond \(k + 1) (\(bond.left.joined(separator: " ")) | \(bond.right.joined(separator: " "))): "
                + "was \(bond.rankBefore), \(PrunedSpecText.percent(kept)) of the output energy kept\(weighting)")
        }
        return lines
    }
}
