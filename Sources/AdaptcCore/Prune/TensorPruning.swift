import AdaptRuntime

/// What the prune stages of the tensor structures (tensor-train, Tucker, CP)
/// share (DESIGN §4): the calibration Gram of each pair, the modes in the
/// runtime's terms, the layer level — layer importance as for lora, the
/// dropped layers one shared lora per module, the rank-r SVD of their mean
/// ΔW — and the per-pair figures of the report.
enum TensorPruning {
    /// The layer level's decision for one group.
    struct LayerLevel {
        var layerShares: [(layer: Int, share: Double)]
        /// Indices into the group's `layers`, ascending.
        var keptIndices: [Int]
        var droppedIndices: [Int]
        var sharedName: String?
        /// Pair index (`l·modules + m` over the group's layers) → what the shared adapter loses there.
        var sharedLost: [Int: Double]
    }

    /// The most important layers stay in the group, the rest get one shared
    /// lora per module, the rank-r SVD of their mean ΔW (written to `weights`).
    /// `energies`: each pair's output energy (`l·modules + m`); `deltas`: each
    /// pair's ΔW `[out, in]` (scale included), only called when a layer is dropped.
    static func layerLevel(_ group: ResolvedGroup, energies: [Double], weighting: TTCalibration, settings: PruneSettings,
                           taken: Set<String>, deltas: () -> [[Double]], weights: inout [String: [Float]]) -> LayerLevel {
        let moduleNames = group.group.modules
        let total = energies.reduce(0, +)
        let layerShares = group.layers.enumerated().map { l, layer in
            (layer: layer, share: total > 0 ? (0..<moduleNames.count).reduce(0) { $0 + energies[l * moduleNames.count + $1] } / total : 0)
        }
        var keptIndices = Array(group.layers.indices)
        if settings.levels.contains(.layer), group.layers.count > 1 {
            keptIndices = LoRADrop.keptLayers(importance: layerShares.map(\.share), threshold: settings.threshold)
        }
        let droppedIndices = group.layers.indices.filter { !keptIndices.contains($0) }
        var level = LayerLevel(layerShares: layerShares, keptIndices: keptIndices, droppedIndices: droppedIndices,
                               sharedName: nil, sharedLost: [:])
        guard !droppedIndices.isEmpty else { return level }
        var name = group.name + "_shared", suffix = 2
        while taken.contains(name) { name = "\(group.name)_shared\(suffix)"; suffix += 1 }
        level.sharedName = name
        let pairDeltas = deltas()
        let inFeatures = group.modules.first!.inFeatures, outFeatures = group.modules.first!.outFeatures
        let rank = group.effectiveRank
        let sharedScale = ResolvedGroup.scale(alpha: group.group.alpha, rank: rank, scaling: group.group.scaling)
        for (m, module) in moduleNames.enumerated() {
            let members = droppedIndices.map { l in
                LoRAFactors(a: identity(inFeatures), b: pairDeltas[l * moduleNames.count + m].map(Float.init), rank: inFeatures,
                            outFeatures: outFeatures, inFeatures: inFeatures, scale: 1)
            }
            let shared = SharedAdapter.truncatedMean(of: members, rank: rank, scale: sharedScale)
            weights[TensorKey.loraA(name, .shared, module).description] = shared.a
            weights[TensorKey.loraB(name, .shared, module).description] = shared.b
            var sharedDelta = [Double](repeating: 0, count: outFeatures * inFeatures)
            for o in 0..<outFeatures { for k in 0..<rank { let b = sharedScale * Double(shared.b[o * rank + k])
                for i in 0..<inFeatures { sharedDelta[o * inFeatures + i] += b * Double(shared.a[k * inFeatures + i]) } } }
            for l in droppedIndices {
                let b = l * moduleNames.count + m
                level.sharedLost[b] = weighting.energy(zip(pairDeltas[b], sharedDelta).map { $0 - $1 }, pair: b)
            }
        }
        return level
    }

    /// One `PairPruning` per pair of the group: a kept layer's pair has the
    /// rank level's loss (`keptLost`, indexed over the kept layers), a dropped
    /// one the shared adapter's.
    static func pairs(_ group: ResolvedGroup, energies: [Double], layer: LayerLevel, keptLost: [Double], rankAfter: Int) -> [PairPruning] {
        let moduleNames = group.group.modules
        var pairs: [PairPruning] = []
        for (l, layerNumber) in group.layers.enumerated() {
            for (m, module) in moduleNames.enumerated() {
                let b = l * moduleNames.count + m
                let kept = layer.keptIndices.firstIndex(of: l).map { $0 * moduleNames.count + m }
                pairs.append(PairPruning(pair: Pair(layer: layerNumber, module: module), importance: energies[b],
                                         rankBefore: group.effectiveRank, rankAfter: kept == nil ? nil : rankAfter, singularValues: [],
                                         componentEnergies: [], keptComponents: [],
                                         lostEnergy: kept.map { keptLost[$0] } ?? layer.sharedLost[b]!, vanished: false))
            }
        }
        return pairs
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
