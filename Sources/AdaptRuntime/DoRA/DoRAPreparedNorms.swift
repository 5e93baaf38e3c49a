/// Where one DoRA pair of a generated adapter sits (DESIGN §5): its shape, its
/// scale and the offsets of A, B and m in `parameters`. Generated code holds
/// these as literals.
public struct DoRAPairLayout: Sendable {
    public let layer: Int
    public let module: String
    public let out: Int
    public let inFeatures: Int
    public let rank: Int
    public let scale: Float
    public let a: Int
    public let b: Int
    public let magnitude: Int

    /// - Parameters:
    ///   - layer: the pair's layer.
    ///   - module: the module's name in the spec.
    ///   - out: rows of W.
    ///   - inFeatures: columns of W.
    ///   - rank: r.
    ///   - scale: s (alpha/r, or rslora's).
    ///   - a: offset of A `[r, in]` in `parameters`.
    ///   - b: offset of B `[out, r]`.
    ///   - magnitude: offset of m `[out]`.
    public init(layer: Int, module: String, out: Int, in inFeatures: Int, rank: Int, scale: Float,
                a: Int, b: Int, magnitude: Int) {
        self.layer = layer
        self.module = module
        self.out = out
        self.inFeatures = inFeatures
        self.rank = rank
        self.scale = scale
        self.a = a
        self.b = b
        self.magnitude = magnitude
    }

    /// `LAYER.MODULE`, the pair's key in `prepare(base:)` and in eval files.
    public var key: String { "\(layer).\(module)" }
}

/// What a generated adapter keeps for its DoRA pairs (DESIGN §5, §6): each
/// pair's row norms `‖W + s·B·A‖`, computed by `prepare(base:)` from the base W
/// the caller hands over (`DoRAPair.rowNorms`, never forming `W + s·B·A`; W
/// itself is not kept) and the parameters of that moment. The norms depend on
/// A and B, so they are stale once `parameters` has been taken again
/// (`AdapterStorage.parameterVersion`, the rule that marks `prepare()`'s state
/// stale); without W they cannot be recomputed, so forward and backward of
/// the pair then throw, saying to call `prepare(base:)` again.
///
/// Public only because generated code (compiled in the app's module) calls it.
public final class DoRAPreparedNorms {
    private let spec: String
    private let pairKeys: [String]
    private let pairs: [DoRAPairLayout?]
    private var norms: [[Float]?]
    private var versions: [Int]
    private var scratch = UnsafeMutableBufferPointer<Float>.allocate(capacity: 0)

    /// - Parameters:
    ///   - spec: the spec's name, for errors.
    ///   - pairKeys: every pair's `LAYER.MODULE`, by the adapter's pair index.
    ///   - pairs: the DoRA pairs by the same index, nil for pairs without DoRA.
    public init(spec: String, pairKeys: [String], pairs: [DoRAPairLayout?]) {
        precondition(pairKeys.count == pairs.count)
        self.spec = spec
        self.pairKeys = pairKeys
        self.pairs = pairs
        norms = Array(repeating: nil, count: pairs.count)
        versions = Array(repeating: -1, count: pairs.count)
    }

    deinit { scratch.deallocate() }

    /// The base key of a pair in a checkpoint: `template` with `{layer}` and `{module}` filled in.
    /// - Parameters:
    ///   - template: `model.weights.key`, e.g. `encoder.layer.{layer}.{module}.weight`.
    ///   - layer: the pair's layer.
    ///   - module: the module's name.
    public static func weightKey(_ template: String, layer: Int, module: String) -> String {
        template.replacingOccurrences(of: "{layer}", with: String(layer)).replacingOccurrences(of: "{module}", with: module)
    }

    /// Computes the norms of the DoRA pairs in `base` (W `[out, in]` each, keyed
    /// `LAYER.MODULE`; pairs without DoRA are ignored, a key naming no pair is an
    /// error). All or nothing: on an error no pair's norms change.
    /// - Parameters:
    ///   - base: W of each pair, `out·in` floats row-major.
    ///   - storage: the adapter's storage (its parameters and their version).
    public func prepare(base: [String: UnsafePointer<Float>], storage: AdapterStorage) throws {
        var given: [(Int, UnsafePointer<Float>)] = []
        for key in base.keys.sorted() {
            guard let index = pairKeys.firstIndex(of: key) else {
                throw AdapterError("\(spec): prepare(base:): no pair \(key) (keys are LAYER.MODULE)")
            }
            if pairs[index] != nil { given.append((index, base[key]!)) }
        }
        commit(try given.map { ($0.0, try checkedNorms($0.0, weight: $0.1, storage: storage)) }, storage: storage)
    }

    /// Reads W of every DoRA pair from a checkpoint (key `weightKey` filled in,
    /// F32, F16 or BF16, `[out, in]`, or `[in, out]` with `transposed`) and
    /// computes the norms. A missing tensor or a wrong shape throws, naming it.
    /// - Parameters:
    ///   - file: the base checkpoint.
    ///   - weightKey: the key template, e.g. `encoder.layer.{layer}.{module}.weight`.
    ///   - transposed: the file stores W `[in, out]` (`model.weights.layout: in_out`).
    ///   - storage: the adapter's storage.
    public func prepare(base file: SafetensorsFile, weightKey: String, transposed: Bool, storage: AdapterStorage) throws {
        // Pair by pair: one W in memory at a time, only the norms kept until all are checked.
        var computed: [(Int, [Float])] = []
        for (index, pair) in pairs.enumerated() {
            guard let pair else { continue }
            let key = Self.weightKey(weightKey, layer: pair.layer, module: pair.module)
            let shape = transposed ? [pair.inFeatures, pair.out] : [pair.out, pair.inFeatures]
            guard let entry = file.entry(key) else {
                throw AdapterError.missingTensor(path: file.path, key: key, shape: shape)
            }
            guard entry.shape == shape else {
                throw AdapterError.tensorShapeMismatch(path: file.path, key: key, shape: entry.shape, expected: shape)
            }
            var w = try file.floats(key)
            if transposed {
                let stored = w
                stored.withUnsafeBufferPointer { stored in
                    w.withUnsafeMutableBufferPointer {
                        MergeArithmetic.transpose(stored, rows: pair.inFeatures, columns: pair.out, into: $0)
                    }
                }
            }
            computed.append((index, try w.withUnsafeBufferPointer { try checkedNorms(index, weight: $0.baseAddress!, storage: storage) }))
        }
        commit(computed, storage: storage)
    }

    /// The pair's norms from W, or the error of its first bad row.
    private func checkedNorms(_ index: Int, weight: UnsafePointer<Float>, storage: AdapterStorage) throws -> [Float] {
        let values = Self.norms(pairs[index]!, weight: weight, storage: storage)
        try check(values, index: index)
        return values
    }

    /// Stores computed norms, stamped with the parameters' version (all checked before: all or nothing).
    private func commit(_ computed: [(Int, [Float])], storage: AdapterStorage) {
        for (index, values) in computed {
            norms[index] = values
            versions[index] = storage.parameterVersion
        }
    }

    private static func norms(_ pair: DoRAPairLayout, weight w: UnsafePointer<Float>, storage: AdapterStorage) -> [Float] {
        let p = storage.parameterBase
        var values = [Float](repeating: 0, count: pair.out)
        values.withUnsafeMutableBufferPointer {
            DoRAPair.rowNorms(w: w, a: p + pair.a, b: p + pair.b, scale: pair.scale, out: pair.out, in: pair.inFeatures,
                              rank: pair.rank, into: $0.baseAddress!, threads: storage.threads)
        }
        return values
    }

    private func check(_ values: [Float], index: Int) throws {
        if let row = values.withUnsafeBufferPointer(DoRAPair.firstBadRow) {
            throw AdapterError("\(spec): DoRA pair \(pairKeys[index]): row \(row) of W + s·B·A has norm \(values[row]); DoRA divides by it")
        }
    }

    /// True when the pair at `index` is a DoRA pair.
    /// - Parameter index: the adapter's pair index.
    public func isDoRA(_ index: Int) -> Bool { pairs[index] != nil }

    /// Throws unless the pair's norms are there and current; nothing for a pair without DoRA.
    /// - Parameters:
    ///   - index: the adapter's pair index.
    ///   - storage: the adapter's storage.
    public func requireNorms(_ index: Int, storage: AdapterStorage) throws {
        guard pairs[index] != nil else { return }
        guard norms[index] != nil else {
            throw AdapterError("\(spec): \(pairKeys[index]) is a DoRA pair and needs its base weight W: call prepare(base:) with it")
        }
        guard versions[index] == storage.parameterVersion else {
            throw AdapterError("\(spec): DoRA pair \(pairKeys[index]): the parameters changed since prepare(base:) (its row norms depend on A and B): call prepare(base:) again")
        }
    }

    /// Throws for a DoRA pair, whose `call` needs what only `use` gets.
    /// - Parameters:
    ///   - index: the adapter's pair index.
    ///   - call: the refused entry point.
    ///   - needs: what it lacks (the base output, W).
    ///   - use: the one to call instead.
    public func refuse(_ index: Int, call: String, needs: String, use: String) throws {
        guard pairs[index] != nil else { return }
        throw AdapterError("\(spec): \(pairKeys[index]) is a DoRA pair: \(call) needs \(needs); use \(use)")
    }

    /// Throws for a pair without DoRA, naming `use`.
    /// - Parameters:
    ///   - index: the adapter's pair index.
    ///   - use: the entry point for pairs without DoRA.
    public func requireDoRA(_ index: Int, use: String) throws {
        guard pairs[index] == nil else { return }
        throw AdapterError("\(spec): \(pairKeys[index]) is not a DoRA pair; use \(use)")
    }

    /// Forward's last step (`DoRAPair.rescale`) on `y` `[n, out]`, which holds
    /// `x·Wᵀ + x·ΔWᵀ`; nothing for a pair without DoRA. Call `requireNorms` first.
    /// - Parameters:
    ///   - index: the adapter's pair index.
    ///   - y: the output rows.
    ///   - n: token rows.
    ///   - storage: the adapter's storage.
    public func rescale(_ index: Int, y: UnsafeMutablePointer<Float>, rows n: Int, storage: AdapterStorage) {
        guard let pair = pairs[index], let norms = norms[index] else { return }
        norms.withUnsafeBufferPointer {
            DoRAPair.rescale(y, rows: n, magnitude: storage.parameterBase + pair.magnitude, norms: $0.baseAddress!,
                             out: pair.out, threads: storage.threads)
        }
    }

    /// Backward's DoRA step (`DoRAPair.backward`): dm accumulates in
    /// `storage.gradients`, `dy` becomes the gradient with respect to `x·Vᵀ`.
    /// - Parameters:
    ///   - index: the adapter's pair index.
    ///   - v: `x·Vᵀ` `[n, out]`.
    ///   - dy: `[n, out]`, rewritten.
    ///   - n: token rows.
    ///   - storage: the adapter's storage.
    public func backward(_ index: Int, xV v: UnsafePointer<Float>, dy: UnsafeMutablePointer<Float>, rows n: Int,
                         storage: AdapterStorage) {
        guard let pair = pairs[index], let norms = norms[index] else { return }
        norms.withUnsafeBufferPointer {
            DoRAPair.backward(xV: v, dy: dy, magnitude: storage.parameterBase + pair.magnitude, norms: $0.baseAddress!,
                              magnitudeGradient: storage.gradients.baseAddress! + pair.magnitude,
                              rows: n, out: pair.out, threads: storage.threads)
        }
    }

    /// Materialize with the base at hand: `W' − W` into `delta` for a DoRA
    /// pair, the norms computed from the `weight` given here (the stored ones
    /// are not used or changed), else ΔW. `lora` writes the pair's ΔW = s·B·A;
    /// a bad norm throws before `delta` is touched.
    /// - Parameters:
    ///   - index: the adapter's pair index.
    ///   - weight: the base W `[out, in]`.
    ///   - delta: `[out, in]`, written.
    ///   - storage: the adapter's storage.
    ///   - lora: writes ΔW into the pointer it gets.
    public func materialize(_ index: Int, weight: UnsafePointer<Float>, into delta: UnsafeMutablePointer<Float>,
                            storage: AdapterStorage, lora: (UnsafeMutablePointer<Float>) -> Void) throws {
        guard let pair = pairs[index] else {
            lora(delta)
            return
        }
        let values = Self.norms(pair, weight: weight, storage: storage)
        try check(values, index: index)
        lora(delta)
        values.withUnsafeBufferPointer {
            DoRAPair.mergedChange(delta, weight: weight, magnitude: storage.parameterBase + pair.magnitude,
                                  norms: $0.baseAddress!, out: pair.out, in: pair.inFeatures, threads: storage.threads)
        }
    }

    /// Scratch of at least `count` floats apart from the adapter's workspace
    /// (backward keeps `x·Vᵀ` there while the forward kernel uses the workspace);
    /// valid until the next call.
    /// - Parameter count: floats needed.
    public func scratch(atLeast count: Int) -> UnsafeMutablePointer<Float> {
        if scratch.count < max(count, 1) {
            scratch.deallocate()
            scratch = .allocate(capacity: max(count, 1))
        }
        return scratch.baseAddress!
    }
}
