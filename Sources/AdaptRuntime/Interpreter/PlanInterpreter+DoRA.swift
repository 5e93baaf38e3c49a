/// DoRA pairs in the interpreter (DESIGN §5). A DoRA pair computes
/// `W' = m ⊙ V / ‖V‖_row`, `V = W + s·B·A`, so it needs its base weight W: the
/// caller hands it over with `prepare(base:)`, the interpreter keeps a copy
/// (it is the reference, not the fast path) and the row norms `‖V‖` computed
/// from `‖W_o‖²`, `B·(A·W_oᵀ)` and `‖B_o·A‖²` (`DoRAPair.rowNorms`, never
/// forming V). `prepare()` recomputes the norms from the kept W after the
/// parameters change.
///
/// What each call means for a DoRA pair:
/// - forward: `y` holds the caller's base output `x·Wᵀ` on entry and DoRA's
///   output `x·W'ᵀ` on return. It runs the pair's LoRA program (`y += x·ΔWᵀ`,
///   giving `x·Vᵀ`) and scales column o by `m_o / ‖V_o‖`.
/// - backward (`backward(…baseOutput:dy:…)`): the norm is a constant, as PEFT
///   detaches it. `dy` (with respect to DoRA's output) becomes, in place, the
///   gradient with respect to the base output, `c ⊙ dy` with `c = m/‖V‖`, which
///   the caller's own base backward then takes through W; `dx` gets the
///   adapter's direct part `(c ⊙ dy)·ΔW`, A and B their gradients for `c ⊙ dy`,
///   and `dm_o = Σ_rows (x·Vᵀ)_o · dy_o / ‖V_o‖`.
/// - materialize: `W' − W`, the change merge applies.
///
/// The arithmetic is `DoRAPair`'s, which the generated code calls too.
struct DoRABase {
    var weight: [Float]
    var norms: [Float]
    /// The first row whose norm is zero or not finite (DoRA divides by it).
    var badRow: Int?
    /// `storage.parameterVersion` the norms were computed at: they are
    /// recomputed from the kept W once the parameters may have changed.
    var version: Int = -1
}

extension PlanInterpreter {
    /// Takes the base weights of DoRA pairs, keyed `LAYER.MODULE`, `[out, in]`
    /// each (pairs without DoRA are ignored, a key naming no pair is an error),
    /// and computes their row norms. Run
    /// again after the parameters change (or `prepare()`, which reuses the kept W).
    public func prepare(base: [String: UnsafeBufferPointer<Float>]) throws {
        for key in base.keys.sorted() {
            guard let pair = plan.pairs.first(where: { $0.key == key }) else {
                throw AdapterError("\(plan.specName): prepare(base:): no pair \(key) (keys are LAYER.MODULE)")
            }
            guard pair.dora != nil else { continue }
            let weight = base[key]!
            try expect(weight.count, pair.outFeatures * pair.inFeatures, "W", pair)
            doraBases[key] = DoRABase(weight: Array(weight), norms: [], badRow: nil)
        }
        prepare()
        for key in base.keys.sorted() {
            if let state = doraBases[key], let row = state.badRow {
                throw AdapterError("\(plan.specName): DoRA pair \(key): row \(row) of W + s·B·A has norm \(state.norms[row]); DoRA divides by it")
            }
        }
    }

    /// Forgets the base weight of a DoRA pair (eval and merge stream pair by pair).
    public func releaseBase(layer: Int, module: String) {
        doraBases["\(layer).\(module)"] = nil
    }

    /// DoRA's backward for one pair (see the type's notes): `baseOutput` is
    /// `x·Wᵀ` (what forward got in `y`); `dy` is replaced by the gradient with
    /// respect to the base output; `dx +=` the adapter's direct part; the
    /// gradients of A, B and m accumulate.
    public func backward(layer: Int, module: String, x: UnsafeBufferPointer<Float>, baseOutput: UnsafeBufferPointer<Float>,
                         dy: UnsafeMutableBufferPointer<Float>, rows n: Int, dx: UnsafeMutableBufferPointer<Float>) throws {
        let pair = try self.pair(layer, module)
        try expect(x.count, n * pair.inFeatures, "x", pair)
        try expect(baseOutput.count, n * pair.outFeatures, "baseOutput", pair)
        try expect(dy.count, n * pair.outFeatures, "dy", pair)
        try expect(dx.count, n * pair.inFeatures, "dx", pair)
        guard let dora = pair.dora else {
            throw AdapterError("\(plan.specName): \(pair.key) is not a DoRA pair; use backward(layer:module:x:dy:rows:dx:)")
        }
        ensurePreparedForDoRA()
        guard let norms = try doraNorms(pair) else { preconditionFailure("DoRA pair without norms") }
        // x·Vᵀ = x·Wᵀ + x·ΔWᵀ, through the pair's own forward program.
        var v = Array(baseOutput)
        try v.withUnsafeMutableBufferPointer { v in
            try forwardLoRA(pair, x: x, rows: n, y: v)
        }
        v.withUnsafeBufferPointer { v in
            norms.withUnsafeBufferPointer { norms in
                DoRAPair.backward(xV: v.baseAddress!, dy: dy.baseAddress!, magnitude: magnitude(pair), norms: norms.baseAddress!,
                                  magnitudeGradient: storage.gradients.baseAddress! + dora.magnitude.offset,
                                  rows: n, out: pair.outFeatures, threads: storage.threads)
            }
        }
        runBackward(pair, x: x, dy: UnsafeBufferPointer(dy), rows: n, dx: dx)
    }

    /// `W' − W` for a DoRA pair from the W given here (merge streams the base
    /// weight by weight; nothing is kept), else `ΔW`. `weight` `[out, in]`.
    public func materialize(layer: Int, module: String, base weight: UnsafeBufferPointer<Float>,
                            into delta: UnsafeMutableBufferPointer<Float>) throws {
        let pair = try self.pair(layer, module)
        try expect(delta.count, pair.outFeatures * pair.inFeatures, "ΔW", pair)
        guard let dora = pair.dora else {
            try materialize(layer: layer, module: module, into: delta)
            return
        }
        try expect(weight.count, pair.outFeatures * pair.inFeatures, "W", pair)
        let state = norms(of: dora, weight: weight, pair: pair)
        if let row = state.badRow {
            throw AdapterError("\(plan.specName): DoRA pair \(pair.key): row \(row) of W + s·B·A has norm \(state.norms[row]); DoRA divides by it")
        }
        runMaterialize(pair, into: delta)
        mergedChange(pair, delta: delta, weight: weight, norms: state.norms)
    }

    // MARK: - Internals the main file calls

    /// nil for a pair without DoRA; its norms, or an error saying what is missing.
    func doraNorms(_ pair: PairPlan) throws -> [Float]? {
        guard pair.dora != nil else { return nil }
        guard let kept = doraBases[pair.key] else {
            throw AdapterError("\(plan.specName): \(pair.key) is a DoRA pair and needs its base weight W: call prepare(base:) with it (adaptc: pass --base)")
        }
        if kept.version != storage.parameterVersion { prepareDoRANorms() }
        let state = doraBases[pair.key]!
        if let row = state.badRow {
            throw AdapterError("\(plan.specName): DoRA pair \(pair.key): row \(row) of W + s·B·A has norm \(state.norms[row]); DoRA divides by it")
        }
        return state.norms
    }

    func refuseDoRA(_ pair: PairPlan, call: String, use: String) throws {
        guard pair.dora != nil else { return }
        throw AdapterError("\(plan.specName): \(pair.key) is a DoRA pair: \(call) needs the base output; use \(use)")
    }

    /// y (= x·Vᵀ after the LoRA program) ← (m/‖V‖) ⊙ y.
    func rescaleDoRA(_ pair: PairPlan, rows n: Int, y: UnsafeMutableBufferPointer<Float>, norms: [Float]) {
        guard let y = y.baseAddress else { return }
        norms.withUnsafeBufferPointer {
            DoRAPair.rescale(y, rows: n, magnitude: magnitude(pair), norms: $0.baseAddress!, out: pair.outFeatures,
                             threads: storage.threads)
        }
    }

    /// `delta`: ΔW on entry, `W' − W` on return (`DoRAPair.mergedChange`).
    func mergedChange(_ pair: PairPlan, delta: UnsafeMutableBufferPointer<Float>, weight: UnsafeBufferPointer<Float>,
                      norms: [Float]) {
        norms.withUnsafeBufferPointer {
            DoRAPair.mergedChange(delta.baseAddress!, weight: weight.baseAddress!, magnitude: magnitude(pair),
                                  norms: $0.baseAddress!, out: pair.outFeatures, in: pair.inFeatures, threads: storage.threads)
        }
    }

    func magnitude(_ pair: PairPlan) -> UnsafePointer<Float> {
        UnsafePointer(storage.parameterBase + pair.dora!.magnitude.offset)
    }

    /// Recomputes every kept DoRA pair's norms from the current A, B (what `prepare()` does).
    func prepareDoRANorms() {
        for key in doraBases.keys.sorted() {
            guard let pair = plan.pairs.first(where: { $0.key == key }), let dora = pair.dora else { continue }
            let weight = doraBases[key]!.weight
            doraBases[key] = weight.withUnsafeBufferPointer { norms(of: dora, weight: $0, pair: pair) }
            doraBases[key]!.weight = weight
            doraBases[key]!.version = storage.parameterVersion
        }
    }

    private func ensurePreparedForDoRA() {
        if !storage.preparedIsCurrent { prepare() }
    }

    private func forwardLoRA(_ pair: PairPlan, x: UnsafeBufferPointer<Float>, rows n: Int,
                             y: UnsafeMutableBufferPointer<Float>) throws {
        forwardPlain(pair, x: x, rows: n, y: y)
    }

    /// `W ← W'` (or back with `unmerge`, which takes the norms prepared from the
    /// original W: W' alone does not determine them) for a DoRA pair; `weight`
    /// `[out, in]`, or `[in, out]` with `transposed`.
    func mergeDoRA(_ pair: PairPlan, into weight: UnsafeMutableBufferPointer<Float>, unmerge: Bool, transposed: Bool) throws {
        let (out, inDim) = (pair.outFeatures, pair.inFeatures)
        var w = [Float](repeating: 0, count: weight.count)
        w.withUnsafeMutableBufferPointer { w in
            if transposed { MergeArithmetic.transpose(UnsafeBufferPointer(weight), rows: inDim, columns: out, into: w) }
            else { _ = w.update(fromContentsOf: weight) }
        }
        var delta = [Float](repeating: 0, count: weight.count)
        if unmerge {
            guard let norms = try doraNorms(pair) else { return }
            delta.withUnsafeMutableBufferPointer { runMaterialize(pair, into: $0) }
            w.withUnsafeMutableBufferPointer { w in
                delta.withUnsafeBufferPointer { delta in
                    norms.withUnsafeBufferPointer {
                        DoRAPair.unmerge(w.baseAddress!, delta: delta.baseAddress!, magnitude: magnitude(pair), norms: $0.baseAddress!,
                                         out: out, in: inDim, threads: storage.threads)
                    }
                }
            }
        } else {
            try w.withUnsafeBufferPointer { w in
                try delta.withUnsafeMutableBufferPointer { try materialize(layer: pair.layer, module: pair.module, base: w, into: $0) }
            }
            for k in w.indices { w[k] += delta[k] }
        }
        w.withUnsafeBufferPointer { w in
            if transposed { MergeArithmetic.transpose(w, rows: out, columns: inDim, into: weight) }
            else { _ = weight.update(fromContentsOf: w) }
        }
    }

    private func norms(of dora: DoRAPlan, weight: UnsafeBufferPointer<Float>, pair: PairPlan) -> DoRABase {
        let p = storage.parameterBase
        var norms = [Float](repeating: 0, count: pair.outFeatures)
        norms.withUnsafeMutableBufferPointer {
            DoRAPair.rowNorms(w: weight.baseAddress!, a: p + dora.a.offset, b: p + dora.b.offset, scale: Float(pair.scale),
                              out: pair.outFeatures, in: pair.inFeatures, rank: pair.rank, into: $0.baseAddress!,
                              threads: storage.threads)
        }
        return DoRABase(weight: [], norms: norms, badRow: norms.withUnsafeBufferPointer(DoRAPair.firstBadRow))
    }
}
