/// LoRA-drop on one lora group (DESIGN §4): what `adaptc prune` runs, exposed so
/// an app can prune after a few training steps, as LoRA-drop does, and hand the
/// pruned factors back to `adaptc` to compile again.
///
/// Layer level first: layers ranked by their share of the group's output energy,
/// the most important kept until the cumulative share reaches the threshold,
/// the rest given one shared adapter per module (rank-r SVD of their mean ΔW).
/// Then rank level on the kept layers: each pair canonicalised and its
/// components kept by data-weighted share, per pair or across the group.
public enum LoRADropPruner {
    public struct Options: Sendable {
        public var threshold: Double
        public var layerLevel: Bool
        public var rankLevel: Bool
        /// `--scope global`: rank level ranks all components of the group together.
        public var globalScope: Bool

        /// TBB threads for the importance pass (0: all cores).
        public var threads: Int

        public init(threshold: Double = 0.9, layerLevel: Bool = true, rankLevel: Bool = true, globalScope: Bool = false,
                    threads: Int = 1) {
            self.threads = threads
            self.threshold = threshold
            self.layerLevel = layerLevel
            self.rankLevel = rankLevel
            self.globalScope = globalScope
        }
    }

    /// One pair of the group with its calibration rows `x` `[rows, in]`.
    public struct PairInput: Sendable {
        public var layer: Int
        public var module: String
        public var factors: LoRAFactors
        /// alpha and scaling, to give a pruned rank its scale (alpha is kept, DESIGN §4).
        public var alpha: Double?
        public var rsLoRA: Bool
        public var x: [Float]
        public var rows: Int

        public init(layer: Int, module: String, factors: LoRAFactors, alpha: Double?, rsLoRA: Bool, x: [Float], rows: Int) {
            precondition(x.count == rows * factors.inFeatures, "PairInput \(layer).\(module): x does not match [rows, in]")
            self.layer = layer
            self.module = module
            self.factors = factors
            self.alpha = alpha
            self.rsLoRA = rsLoRA
            self.x = x
            self.rows = rows
        }

        /// s for rank r: alpha/r, alpha/√r (rsLoRA), 1 without alpha (DESIGN §2).
        public func scale(rank: Int) -> Double {
            guard let alpha else { return 1 }
            return rsLoRA ? alpha / Double(rank).squareRoot() : alpha / Double(rank)
        }
    }

    /// What became of one pair.
    public struct PairResult: Sendable {
        public var layer: Int
        public var module: String
        /// `Σ_rows ‖x·ΔWᵀ‖²` of the input adapter.
        public var importance: Double
        /// σ_k of the canonical form (scale included), descending; empty when rank level did not run.
        public var singularValues: [Double]
        /// Data-weighted share of each component (same order as `singularValues`).
        public var componentEnergies: [Double]
        /// Indices into `singularValues` of the components kept.
        public var keptComponents: [Int]
        /// True when the layer was dropped (the pair now uses its module's shared adapter).
        public var dropped: Bool
        /// The pair's new adapter: the input's, bit for bit, when nothing changed;
        /// rank 0 when global scope kept none of its components; nil when dropped.
        public var factors: LoRAFactors?
        /// `Σ_rows ‖x·(ΔW − ΔW')ᵀ‖²` on the calibration rows.
        public var lostEnergy: Double
    }

    public struct GroupResult: Sendable {
        public var pairs: [PairResult]
        /// Layers ascending with their share of the group's energy.
        public var layerShares: [(layer: Int, share: Double)]
        public var keptLayers: [Int]
        public var droppedLayers: [Int]
        /// One adapter per module for the dropped layers (module order as in the input).
        public var sharedAdapters: [(module: String, factors: LoRAFactors)]
        public var totalEnergy: Double { pairs.reduce(0) { $0 + $1.importance } }
        public var lostEnergy: Double { pairs.reduce(0) { $0 + $1.lostEnergy } }
    }

    /// Prunes a group whose pairs each have their own (A, B). `sharedRank` and
    /// `sharedScale`: the group's rank and scale, given to the dropped layers'
    /// shared adapters.
    public static func prune(_ pairs: [PairInput], sharedRank: Int, sharedScale: Double, options: Options) -> GroupResult {
        let importance = importances(pairs, threads: options.threads)
        let layers = Array(Set(pairs.map(\.layer))).sorted()
        let perLayer = layers.map { l in pairs.indices.filter { pairs[$0].layer == l }.reduce(0.0) { $0 + importance[$1] } }
        let total = perLayer.reduce(0, +)
        let layerShares = zip(layers, perLayer).map { (layer: $0, share: total > 0 ? $1 / total : 0) }
        let kept = options.layerLevel && layers.count > 1
            ? LoRADrop.keptLayers(importance: perLayer, threshold: options.threshold).map { layers[$0] } : layers
        let dropped = layers.filter { !kept.contains($0) }

        var results = pairs.indices.map { i in
            PairResult(layer: pairs[i].layer, module: pairs[i].module, importance: importance[i], singularValues: [],
                       componentEnergies: [], keptComponents: [], dropped: dropped.contains(pairs[i].layer),
                       factors: dropped.contains(pairs[i].layer) ? nil : pairs[i].factors, lostEnergy: 0)
        }

        // Dropped layers: one shared adapter per module, in module order of first appearance.
        var modules: [String] = []
        for p in pairs where !modules.contains(p.module) { modules.append(p.module) }
        var shared: [(module: String, factors: LoRAFactors)] = []
        if !dropped.isEmpty {
            for module in modules {
                let members = pairs.indices.filter { pairs[$0].module == module && dropped.contains(pairs[$0].layer) }
                let adapter = SharedAdapter.truncatedMean(of: members.map { pairs[$0].factors }, rank: sharedRank, scale: sharedScale)
                shared.append((module, adapter))
                for i in members {
                    results[i].lostEnergy = pairs[i].x.withUnsafeBufferPointer {
                        LoRAImportance.outputEnergy(difference(pairs[i].factors, adapter), x: $0, rows: pairs[i].rows)
                    }
                }
            }
        }

        if options.rankLevel {
            let live = pairs.indices.filter { !results[$0].dropped }
            let canonical = live.map { LoRACanonicalForm(pairs[$0].factors) }
            let energies = zip(live, canonical).map { i, form in
                pairs[i].x.withUnsafeBufferPointer { form.componentEnergies(x: $0, rows: pairs[i].rows) }
            }
            let keptByPair = options.globalScope
                ? LoRADrop.keptComponents(sharesByPair: energies, threshold: options.threshold)
                : energies.map { LoRADrop.keptComponents(shares: $0, threshold: options.threshold) }
            for (j, i) in live.enumerated() {
                let form = canonical[j], keptComponents = keptByPair[j]
                results[i].singularValues = form.singularValues
                results[i].componentEnergies = energies[j]
                results[i].keptComponents = keptComponents
                let droppedComponents = form.singularValues.indices.filter { !keptComponents.contains($0) }
                results[i].lostEnergy = droppedComponents.reduce(0) { $0 + energies[j][$1] }
                if keptComponents.count == pairs[i].factors.rank {
                    continue  // every slot still used: the input's factors, unchanged
                } else if keptComponents.isEmpty {
                    let f = pairs[i].factors
                    results[i].factors = LoRAFactors(a: [], b: [], rank: 0, outFeatures: f.outFeatures, inFeatures: f.inFeatures,
                                                     scale: 0)
                } else {
                    results[i].factors = form.factors(keeping: keptComponents, scale: pairs[i].scale(rank: keptComponents.count))
                }
            }
        }
        return GroupResult(pairs: results, layerShares: layerShares, keptLayers: kept, droppedLayers: dropped,
                           sharedAdapters: shared)
    }

    /// One module of a shared group after rank level.
    public struct SharedModuleResult: Sendable {
        public var module: String
        public var factors: LoRAFactors
        public var singularValues: [Double]
        /// Shares summed over the group's layers.
        public var componentEnergies: [Double]
        public var keptComponents: [Int]
        public var importance: Double
        public var lostEnergy: Double
    }

    /// Prunes a `shared: true` group: one (A, B) per module for all its layers, so
    /// layer level does not apply and rank level keeps one rank for the group:
    /// each module's components are ranked by their share summed over its layers,
    /// and the group keeps the largest count any module needs (so every module
    /// keeps at least `threshold` of its energy). `pairs` holds every pair with
    /// its module's shared factors. Returns the group's new rank and each module's factors.
    public static func pruneShared(_ pairs: [PairInput], options: Options) -> (rank: Int, modules: [SharedModuleResult]) {
        var modules: [String] = []
        for p in pairs where !modules.contains(p.module) { modules.append(p.module) }
        let members = modules.map { m in pairs.filter { $0.module == m } }
        let forms = members.map { LoRACanonicalForm($0[0].factors) }
        let energies = zip(members, forms).map { group, form in
            group.map { p in p.x.withUnsafeBufferPointer { form.componentEnergies(x: $0, rows: p.rows) } }
                .reduce([Double](repeating: 0, count: form.components)) { zip($0, $1).map(+) }
        }
        let rank = members[0][0].factors.rank
        var newRank = rank
        if options.rankLevel {
            let kept = options.globalScope
                ? LoRADrop.keptComponents(sharesByPair: energies, threshold: options.threshold)
                : energies.map { LoRADrop.keptComponents(shares: $0, threshold: options.threshold) }
            newRank = max(1, kept.map(\.count).max() ?? rank)
        }
        let result = modules.indices.map { j -> SharedModuleResult in
            let input = members[j][0], form = forms[j]
            let keep = LoRADrop.descending(energies[j]).prefix(min(newRank, form.components)).map { $0 }
            let lost = energies[j].indices.filter { !keep.contains($0) }.reduce(0) { $0 + energies[j][$1] }
            let factors = newRank == input.factors.rank ? input.factors
                : SharedAdapter.padded(form.factors(keeping: keep, scale: input.scale(rank: newRank)), rank: newRank)
            return SharedModuleResult(module: modules[j], factors: factors, singularValues: form.singularValues,
                                      componentEnergies: energies[j], keptComponents: keep,
                                      importance: energies[j].reduce(0, +), lostEnergy: lost)
        }
        return (newRank, result)
    }

    /// Every pair's importance, in parallel over pairs.
    static func importances(_ pairs: [PairInput], threads: Int) -> [Double] {
        var energies = [Double](repeating: 0, count: pairs.count)
        energies.withUnsafeMutableBufferPointer { energies in
            Parallel.forEach(pairs.count, threads: threads) { range in
                for i in range {
                    energies[i] = pairs[i].x.withUnsafeBufferPointer { LoRAImportance.outputEnergy(pairs[i].factors, x: $0, rows: pairs[i].rows) }
                }
            }
        }
        return energies
    }

    /// `ΔW − ΔW'` as one LoRA of inner size r + r' and scale 1, so its output energy
    /// is the error energy without materialising either.
    static func difference(_ x: LoRAFactors, _ y: LoRAFactors) -> LoRAFactors {
        let r = x.rank + y.rank, out = x.outFeatures
        var b = [Float](repeating: 0, count: out * r)
        for o in 0..<out {
            for k in 0..<x.rank { b[o * r + k] = Float(x.scale) * x.b[o * x.rank + k] }
            for k in 0..<y.rank { b[o * r + x.rank + k] = -Float(y.scale) * y.b[o * y.rank + k] }
        }
        return LoRAFactors(a: x.a + y.a, b: b, rank: r, outFeatures: out, inFeatures: x.inFeatures, scale: 1)
    }
}
