import AdaptRuntime

/// The stacked base weights of a tensor-train, CP or Tucker group as the
/// tensor its cores approximate (DESIGN §2–3): `T[l, m, out…, in…] =
/// W[l,m] / s`, the scale folded so that `ΔW = s·D` reproduces W when D = T,
/// its modes laid out in the group's `order` (factorised modes row-major,
/// `out.0` most significant; size-1 modes dropped), row-major in that order.
///
/// Weights are read one at a time from the base (`--base`), widened to
/// `[out, in]` whatever `model.weights.layout` says, and checked finite. A
/// method that can work weight by weight (TT-SVD's first unfolding) never
/// holds the stacked tensor; `dense()` builds it for the ones that cannot.
struct StackedWeights {
    let group: ResolvedGroup
    /// The group's pairs, layer-major, modules in group order.
    let pairs: [PairPlan]
    let base: BaseCheckpoint
    let template: WeightKeyTemplate
    let outFeatures: Int
    let inFeatures: Int
    /// Mode sizes in `order` (the group's resolved modes).
    let shape: [Int]
    /// Row-major strides of `shape`.
    let strides: [Int]
    /// Where the pair's slice starts (`l·stride(layer) + m·stride(module)`),
    /// and where element `(o, i)` of a weight lands relative to it:
    /// `pairOffset[p] + outOffset[o] + inOffset[i]`.
    let pairOffset: [Int]
    let outOffset: [Int]
    let inOffset: [Int]

    /// LoftQ: quantised bases Q (one per pair) taken off every weight, so the
    /// tensor is `(W − Q)/s`; `nil` for the other methods.
    var removed: (quantiser: Quantiser, bases: [Quantiser.Quantised])?

    /// The modes in the layout used: the group's `order`, or another
    /// permutation of them (a right-to-left sweep reads them reversed).
    let modes: [ResolvedMode]

    init(group: ResolvedGroup, pairs: [PairPlan], base: BaseCheckpoint, template: WeightKeyTemplate,
         modes: [ResolvedMode]? = nil) {
        self.group = group
        self.pairs = pairs
        self.base = base
        self.template = template
        let modes = modes ?? group.modes
        self.modes = modes
        shape = modes.map(\.size)
        var strides = [Int](repeating: 1, count: modes.count)
        for k in stride(from: modes.count - 2, through: 0, by: -1) { strides[k] = strides[k + 1] * shape[k + 1] }
        self.strides = strides
        outFeatures = group.modules.first?.outFeatures ?? 1
        inFeatures = group.modules.first?.inFeatures ?? 1
        func modeStride(_ kind: ModeName.Kind) -> Int { modes.firstIndex { $0.name.kind == kind }.map { strides[$0] } ?? 0 }
        let layerStride = modeStride(.layer), moduleStride = modeStride(.module)
        pairOffset = pairs.map { pair in
            let l = group.layers.firstIndex(of: pair.layer) ?? 0
            let m = group.modules.firstIndex { $0.name == pair.module } ?? 0
            return l * layerStride + m * moduleStride
        }
        outOffset = Self.digitOffsets(.out, count: outFeatures, modes: modes, strides: strides)
        inOffset = Self.digitOffsets(.in, count: inFeatures, modes: modes, strides: strides)
    }

    /// For every index `0..<count` of out (or in): Σ_k digit_k · stride(kind.k),
    /// the digits row-major over the kind's factors (most significant first).
    /// Factors of size 1 were dropped from the modes and carry no digit.
    static func digitOffsets(_ kind: ModeName.Kind, count: Int, modes: [ResolvedMode], strides: [Int]) -> [Int] {
        let factors = modes.indices.filter { modes[$0].name.kind == kind }.sorted { modes[$0].name < modes[$1].name }
        precondition(factors.map { modes[$0].size }.reduce(1, *) == count, "\(kind) factors do not multiply to \(count)")
        return (0..<count).map { index in
            var rest = index, offset = 0
            for k in factors.reversed() {
                offset += (rest % modes[k].size) * strides[k]
                rest /= modes[k].size
            }
            return offset
        }
    }

    var count: Int { shape.reduce(1, *) }
    /// Floats of one weight.
    var weightCount: Int { outFeatures * inFeatures }

    /// W itself, whatever is removed.
    func rawWeight(_ p: Int) throws -> [Float] {
        var raw = self
        raw.removed = nil
        return try raw.weight(p, folded: false)
    }

    /// Every weight located and its shape checked, before any is read.
    func checkPresent() throws { _ = try base.targets(pairs, template: template) }

    /// The same weights laid out with `modes` (a permutation of the group's).
    func laidOut(_ modes: [ResolvedMode]) -> StackedWeights {
        var laidOut = StackedWeights(group: group, pairs: pairs, base: base, template: template, modes: modes)
        laidOut.removed = removed
        return laidOut
    }

    /// The same weights with a quantised base taken off each: `(W − Q)/s`.
    func removing(_ bases: [Quantiser.Quantised], quantiser: Quantiser) -> StackedWeights {
        var result = self
        result.removed = (quantiser, bases)
        return result
    }

    /// Pair `p`'s `W / s` (or W itself, `folded: false`; `(W − Q)/s` or
    /// `W − Q` when a quantised base is removed), row-major `[out, in]`;
    /// NaN or Inf in it is an error naming the tensor and element
    /// (`SafetensorsFile.floats` checks every value it widens).
    func weight(_ p: Int, folded: Bool = true) throws -> [Float] {
        let pair = pairs[p]
        let key = template.key(pair)
        var weight = try base.weight(key, for: pair, template: template)
        if let (quantiser, bases) = removed {
            let q = quantiser.dequantise(bases[p])
            for k in weight.indices { weight[k] -= q[k] }
        }
        let inverse = Float(1 / pair.scale)
        if folded, inverse != 1 { for k in weight.indices { weight[k] *= inverse } }
        return weight
    }

    /// The whole stacked tensor, float64, in `order` (8 bytes an element:
    /// required from the memory budget, with the figure, before anything is read).
    func dense(for method: String) throws -> [Double] {
        try MemoryBudget.require(bytes: 8 * count + 4 * weightCount, for: "the stacked tensor of group '\(group.name)' (\(method))")
        var tensor = [Double](repeating: 0, count: count)
        for p in pairs.indices {
            let w = try weight(p)
            let start = pairOffset[p]
            for o in 0..<outFeatures {
                let row = start + outOffset[o]
                for i in 0..<inFeatures { tensor[row + inOffset[i]] = Double(w[o * inFeatures + i]) }
            }
        }
        return tensor
    }

    /// The whole stacked tensor in float32, as the weights are read (4 bytes an
    /// element: half of `dense`), for the decompositions that read it in
    /// float64 tiles (Tucker, CP-ALS); the same budget check first.
    func denseFloats(for method: String) throws -> [Float] {
        try MemoryBudget.require(bytes: 4 * count + 4 * weightCount, for: "the stacked tensor of group '\(group.name)' (\(method))")
        var tensor = [Float](repeating: 0, count: count)
        for p in pairs.indices {
            let w = try weight(p)
            let start = pairOffset[p]
            for o in 0..<outFeatures {
                let row = start + outOffset[o]
                for i in 0..<inFeatures { tensor[row + inOffset[i]] = w[o * inFeatures + i] }
            }
        }
        return tensor
    }

    /// The mode of `order` at `position` when it lies inside one weight (an
    /// out or in factor): its stride inside the row-major `[out, in]` weight.
    /// `nil` for `layer` and `module`, whose unfolding mixes weights.
    func strideInsideWeight(ofModeAt position: Int) -> Int? {
        let mode = modes[position]
        guard mode.name.kind == .out || mode.name.kind == .in else { return nil }
        // The less significant factors of the same kind, then (for out) all of in.
        let later = modes.filter { $0.name.kind == mode.name.kind && $0.name > mode.name }.map(\.size).reduce(1, *)
        return mode.name.kind == .out ? later * inFeatures : later
    }
}
