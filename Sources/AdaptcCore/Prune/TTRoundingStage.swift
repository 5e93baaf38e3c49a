import AdaptRuntime

/// The rank level of `adaptc prune` for a tensor-train group (DESIGN §4):
/// data-weighted TT-rounding (AdaptRuntime's `TTRounding`) of the group's
/// cores with the calibration Gram of each pair, the new bond ranks for the
/// spec's `ranks:` and the rounded cores (alpha kept, the change of scale
/// folded into the last core). Layer level first, as for lora: the layers
/// kept by importance stay in the train (the others' slices of the layer mode
/// are cut) and the dropped ones become `GROUP_shared`.
public enum TTRoundingStage {
    public static func run(_ group: ResolvedGroup, plan: Plan, adapter: PlanInterpreter, calibration: CalibrationSet,
                           settings: PruneSettings, taken: Set<String>, weights: inout [String: [Float]]) -> GroupPruning {
        guard case .tensorTrain(let bonds) = group.ranks else { preconditionFailure("TTRoundingStage: not a tensor-train group") }
        var modes = group.modes.map(mode)
        var names = group.modes.map(\.name.description)
        var ranks = [1] + bonds + [1]
        var cores = group.modes.indices.map { LoRADropStage.values("\(group.name).core.\($0)", plan, adapter) }
        let moduleNames = group.group.modules
        let inFeatures = group.modules.first!.inFeatures
        let alpha = group.group.alpha, scaling = group.group.scaling
        let scale = ResolvedGroup.scale(alpha: alpha, rank: group.effectiveRank, scaling: scaling)
        let weighting = self.weighting(group, layers: group.layers, calibration: calibration)
        let train = TensorTrain(cores: cores, sizes: modes.map(\.size), ranks: ranks)
        // Contracted core by core: the dense tensor is only formed below, for the
        // dropped layers' mean ΔW, when the layer level drops any.
        let energies = weighting.pairEnergies(train, modes: modes).map { $0 * scale * scale }
        let total = energies.reduce(0, +)
        let layerShares = group.layers.enumerated().map { l, layer in
            (layer: layer, share: total > 0 ? (0..<moduleNames.count).reduce(0) { $0 + energies[l * moduleNames.count + $1] } / total : 0)
        }

        // Layer level: the most important layers stay in the train, the rest get
        // one shared lora per module, the rank-r SVD of their mean ΔW (DESIGN §4).
        var keptIndices = Array(group.layers.indices)
        if settings.levels.contains(.layer), group.layers.count > 1 {
            keptIndices = LoRADrop.keptLayers(importance: layerShares.map(\.share), threshold: settings.threshold)
        }
        let keptLayers = keptIndices.map { group.layers[$0] }
        let droppedIndices = group.layers.indices.filter { !keptIndices.contains($0) }
        var sharedName: String?
        var sharedLost: [Int: Double] = [:]
        if !droppedIndices.isEmpty {
            var name = group.name + "_shared", suffix = 2
            while taken.contains(name) { name = "\(group.name)_shared\(suffix)"; suffix += 1 }
            sharedName = name
            let deltas = TTCalibration.pairDeltas(train.dense(), modes: modes, pairs: weighting.pairCount, inFeatures: inFeatures)
                .map { $0.map { $0 * scale } }
            let rank = group.effectiveRank, sharedScale = ResolvedGroup.scale(alpha: alpha, rank: rank, scaling: scaling)
            let outFeatures = group.modules.first!.outFeatures
            for (m, module) in moduleNames.enumerated() {
                let members = droppedIndices.map { l in
                    LoRAFactors(a: identity(inFeatures), b: deltas[l * moduleNames.count + m].map(Float.init), rank: inFeatures,
                                outFeatures: outFeatures, inFeatures: inFeatures, scale: 1)
                }
                let shared = SharedAdapter.truncatedMean(of: members, rank: rank, scale: sharedScale)
                weights["\(name).shared.\(module).A"] = shared.a
                weights["\(name).shared.\(module).B"] = shared.b
                var sharedDelta = [Double](repeating: 0, count: outFeatures * inFeatures)
                for o in 0..<outFeatures { for k in 0..<rank { let b = sharedScale * Double(shared.b[o * rank + k])
                    for i in 0..<inFeatures { sharedDelta[o * inFeatures + i] += b * Double(shared.a[k * inFeatures + i]) } } }
                for l in droppedIndices {
                    let b = l * moduleNames.count + m
                    sharedLost[b] = weighting.energy(zip(deltas[b], sharedDelta).map { $0 - $1 }, pair: b)
                }
            }
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
        let keptWeighting = self.weighting(group, layers: keptLayers, calibration: calibration)
        let threshold = settings.levels.contains(.rank) ? settings.threshold : 1
        let result = TTRounding.round(cores: cores, ranks: ranks, modes: modes, calibration: keptWeighting, scale: scale,
                                      newScale: { ResolvedGroup.scale(alpha: alpha, rank: $0, scaling: scaling) },
                                      options: .init(threshold: threshold, globalScope: settings.scope == .global))
        for (k, core) in result.cores.enumerated() { weights["\(group.name).core.\(k)"] = core }

        let rankAfter = result.bondRanks.max() ?? 1
        var pairs: [PairPruning] = []
        for (l, layer) in group.layers.enumerated() {
            for (m, module) in moduleNames.enumerated() {
                let b = l * moduleNames.count + m
                let kept = keptIndices.firstIndex(of: l).map { $0 * moduleNames.count + m }
                pairs.append(PairPruning(pair: Pair(layer: layer, module: module), importance: energies[b],
                                         rankBefore: group.effectiveRank, rankAfter: kept == nil ? nil : rankAfter, singularValues: [],
                                         componentEnergies: [], keptComponents: [],
                                         lostEnergy: kept.map { result.pairLostEnergies[$0] } ?? sharedLost[b]!, vanished: false))
            }
        }
        var pruning = GroupPruning(name: group.name, structure: .tensorTrain, pruned: true, layerShares: layerShares,
                                   keptLayers: keptLayers, droppedLayers: droppedIndices.map { group.layers[$0] },
                                   sharedGroupName: sharedName, sharedRank: nil, pairs: pairs)
        pruning.bonds = result.bonds.enumerated().map { j, bond in
            BondPruning(left: Array(names[...j]), right: Array(names[(j + 1)...]), rankBefore: bond.rankBefore,
                        rankAfter: bond.rankAfter, energies: bond.energies, exactWeighting: bond.exactWeighting,
                        lostEnergy: bond.lostEnergy)
        }
        pruning.originalBondRanks = bonds
        return pruning
    }

    /// The Gram of every (layer, module) of `layers`, in the group's module order.
    static func weighting(_ group: ResolvedGroup, layers: [Int], calibration: CalibrationSet) -> TTCalibration {
        var rows: [[Float]] = [], counts: [Int] = []
        for layer in layers {
            for module in group.group.modules {
                let r = calibration.rows[Pair(layer: layer, module: module).key]!
                rows.append(r.x)
                counts.append(r.count)
            }
        }
        return TTCalibration(rows: rows, counts: counts, layers: layers.count, modules: group.group.modules.count,
                             inFeatures: group.modules.first!.inFeatures)
    }

    static func identity(_ n: Int) -> [Float] {
        var a = [Float](repeating: 0, count: n * n)
        for i in 0..<n { a[i * n + i] = 1 }
        return a
    }

    static func mode(_ m: ResolvedMode) -> TTMode {
        switch m.name.kind {
        case .layer: return TTMode(.layer, size: m.size)
        case .module: return TTMode(.module, size: m.size)
        case .out: return TTMode(.out, size: m.size, factor: m.name.factor ?? 0)
        case .in: return TTMode(.in, size: m.size, factor: m.name.factor ?? 0)
        case .task: preconditionFailure("groups with tasks do not plan yet, so they never reach pruning")
        }
    }
}
