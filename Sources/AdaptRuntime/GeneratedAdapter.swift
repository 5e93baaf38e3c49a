/// What every generated adapter type provides (DESIGN §6), so apps, tests and
/// benchmarks can drive any of them the same way. Array conveniences live in
/// the extension below; the generated code holds only the shape-specialised parts.
public protocol GeneratedAdapter: AnyObject {
    /// The model's modules (`query`, `value`, …) in spec order; `moduleName(_:)` gives the spec's name.
    associatedtype Module: RawRepresentable, CaseIterable, Hashable where Module.RawValue == Int

    /// The spec's `name:`.
    static var specName: String { get }
    /// Hash of the spec's meaning; adapter files must carry it (`adaptc.hash`).
    static var specHash: String { get }
    /// Every stored tensor: adapter-file key, shape, offset in `parameters`.
    static var parameterLayout: [ParameterTensor] { get }
    /// Number of floats in `parameters` (and `gradients`).
    static var parameterCount: Int { get }
    /// The module's name in the spec (`attention.self.query`).
    static func moduleName(_ module: Module) -> String
    /// `[out, in]` of the module's weight.
    static func shape(of module: Module) -> (out: Int, in: Int)

    /// The adapter's buffers; apps use `parameters`/`gradients` instead (see `AdapterStorage`).
    var storage: AdapterStorage { get }

    /// Zero parameters; `threads` TBB threads for every parallel step (0: TBB's default).
    init(threads: Int)
    /// Computes prepared state from the parameters (tensor structures); run
    /// automatically before forward/backward/materialize when it is stale.
    func prepare()
    /// `y[n, out] += x[n, in]·ΔWᵀ` for one pair; throws `AdapterError` on an unknown pair or wrong sizes.
    func forward(layer: Int, module: Module, x: UnsafeBufferPointer<Float>, rows n: Int,
                 y: UnsafeMutableBufferPointer<Float>) throws
    /// Several modules of one layer reading the same `x`: `outputs[i] += x·ΔW[layer, modules[i]]ᵀ`.
    func forward(layer: Int, modules: [Module], x: UnsafeBufferPointer<Float>, rows n: Int,
                 outputs: [UnsafeMutableBufferPointer<Float>]) throws
    /// `dx[n, in] += dy[n, out]·ΔW`; parameter gradients accumulate in `gradients`
    /// (those of prepared state once `finishBackward()` runs).
    func backward(layer: Int, module: Module, x: UnsafeBufferPointer<Float>, dy: UnsafeBufferPointer<Float>,
                  rows n: Int, dx: UnsafeMutableBufferPointer<Float>) throws
    /// VJP of the fused forward: `dx += Σ_i dys[i]·ΔW[layer, modules[i]]`, sharing
    /// the input-side work; parameter gradients accumulate as in `backward`.
    func backward(layer: Int, modules: [Module], x: UnsafeBufferPointer<Float>, dys: [UnsafeBufferPointer<Float>],
                  rows n: Int, dx: UnsafeMutableBufferPointer<Float>) throws
    /// Pushes gradients of prepared state into `gradients`, then clears them;
    /// idempotent. Call it after the last `backward` of a batch, before reading
    /// `gradients` (the optimizers' adapter forms call it themselves).
    func finishBackward()
    /// `ΔW[out, in]` of one pair, scale included.
    func materialize(layer: Int, module: Module, into delta: UnsafeMutableBufferPointer<Float>) throws
    /// What merge adds to the base `weight` W `[out, in]`: `W' − W` for a DoRA
    /// pair (DESIGN §5, computed from this W), `ΔW` for the others (the default,
    /// for specs without DoRA, ignores `weight`).
    func materialize(layer: Int, module: Module, base weight: UnsafeBufferPointer<Float>,
                     into delta: UnsafeMutableBufferPointer<Float>) throws
}

extension GeneratedAdapter {
    /// Without DoRA the change merge applies does not depend on W: `ΔW`.
    public func materialize(layer: Int, module: Module, base weight: UnsafeBufferPointer<Float>,
                            into delta: UnsafeMutableBufferPointer<Float>) throws {
        try materialize(layer: layer, module: module, into: delta)
    }

    /// Without a fused program: the backward of each pair in turn.
    public func backward(layer: Int, modules: [Module], x: UnsafeBufferPointer<Float>, dys: [UnsafeBufferPointer<Float>],
                         rows n: Int, dx: UnsafeMutableBufferPointer<Float>) throws {
        guard modules.count == dys.count else {
            throw AdapterError("\(Self.specName): \(modules.count) modules but \(dys.count) output gradients")
        }
        for (module, dy) in zip(modules, dys) {
            try backward(layer: layer, module: module, x: x, dy: dy, rows: n, dx: dx)
        }
    }

    /// The parameters in `parameterLayout` order, for an optimizer to write.
    /// Taking this view marks prepared state stale. Valid while the adapter
    /// lives: the buffer is freed with it (`withParameters` scopes the access).
    public var parameters: UnsafeMutableBufferPointer<Float> { storage.parameters }
    /// The gradients, same layout; they start at zero and accumulate until
    /// `zeroGradients()`. Valid while the adapter lives.
    public var gradients: UnsafeMutableBufferPointer<Float> { storage.gradients }
    /// `Self.parameterCount`.
    public var parameterCount: Int { Self.parameterCount }

    /// `y += x·ΔWᵀ` on arrays; returns the updated `y` (zeros when not given).
    public func forward(layer: Int, module: Module, x: [Float], rows n: Int, y: [Float]? = nil) throws -> [Float] {
        var out = y ?? [Float](repeating: 0, count: n * Self.shape(of: module).out)
        try x.withUnsafeBufferPointer { x in
            try out.withUnsafeMutableBufferPointer { y in try forward(layer: layer, module: module, x: x, rows: n, y: y) }
        }
        return out
    }

    /// `dx += dy·ΔW` on arrays (parameter gradients accumulate in `gradients`).
    public func backward(layer: Int, module: Module, x: [Float], dy: [Float], rows n: Int, dx: [Float]? = nil) throws -> [Float] {
        var out = dx ?? [Float](repeating: 0, count: n * Self.shape(of: module).in)
        try x.withUnsafeBufferPointer { x in
            try dy.withUnsafeBufferPointer { dy in
                try out.withUnsafeMutableBufferPointer { dx in
                    try backward(layer: layer, module: module, x: x, dy: dy, rows: n, dx: dx)
                }
            }
        }
        return out
    }

    /// `ΔW` `[out, in]`, scale included.
    public func materialize(layer: Int, module: Module) throws -> [Float] {
        let shape = Self.shape(of: module)
        var delta = [Float](repeating: 0, count: shape.out * shape.in)
        try delta.withUnsafeMutableBufferPointer { try materialize(layer: layer, module: module, into: $0) }
        return delta
    }
}

extension GeneratedAdapter {
    /// `W += ΔW` in place (`unmerge`: `W −= ΔW`), W `[out, in]` row-major: after a
    /// merge the base layer alone computes what base + adapter did.
    /// `transposed`: W is stored `[in, out]` (GPT-2's Conv1D, PEFT's
    /// `fan_in_fan_out`), so `Wᵀ += ΔW`. A DoRA pair merges to
    /// `W' = m ⊙ (W + s·B·A)/‖W + s·B·A‖_row` (from this W; no `prepare(base:)`
    /// needed); its unmerge throws, as W' alone does not determine W.
    public func merge(layer: Int, module: Module, into weight: UnsafeMutableBufferPointer<Float>, unmerge: Bool = false,
                      transposed: Bool = false) throws {
        let shape = Self.shape(of: module)
        guard weight.count == shape.out * shape.in else {
            throw AdapterError.shapeMismatch(spec: Self.specName, argument: "W", count: weight.count, expected: shape.out * shape.in)
        }
        var delta = [Float](repeating: 0, count: weight.count)
        try delta.withUnsafeMutableBufferPointer { delta in
            if unmerge { return try materialize(layer: layer, module: module, into: delta) }
            guard transposed else {
                return try materialize(layer: layer, module: module, base: UnsafeBufferPointer(weight), into: delta)
            }
            // DoRA's change is computed from W `[out, in]`.
            var w = [Float](repeating: 0, count: weight.count)
            w.withUnsafeMutableBufferPointer { MergeArithmetic.transpose(UnsafeBufferPointer(weight), rows: shape.in, columns: shape.out, into: $0) }
            try w.withUnsafeBufferPointer { try materialize(layer: layer, module: module, base: $0, into: delta) }
        }
        delta.withUnsafeBufferPointer {
            MergeArithmetic.add($0, rows: shape.out, columns: shape.in, to: weight, sign: unmerge ? -1 : 1, transposed: transposed)
        }
    }
}

/// The shared arithmetic of merge and unmerge.
public enum MergeArithmetic {
    /// `weight += sign·delta`, element by element.
    public static func add(_ delta: [Float], to weight: UnsafeMutableBufferPointer<Float>, sign: Float) {
        for i in 0..<delta.count { weight[i] += sign * delta[i] }
    }

    /// `weight += sign·delta` for `delta` `[rows, columns]`; with `transposed`,
    /// `weight` is `[columns, rows]` and receives `sign·deltaᵀ`.
    public static func add(_ delta: UnsafeBufferPointer<Float>, rows: Int, columns: Int,
                           to weight: UnsafeMutableBufferPointer<Float>, sign: Float, transposed: Bool) {
        precondition(delta.count == rows * columns && weight.count == delta.count)
        guard transposed else {
            for i in 0..<delta.count { weight[i] += sign * delta[i] }
            return
        }
        // In tiles, so both the rows read and the rows written stay in cache.
        let tile = 32
        for i0 in stride(from: 0, to: rows, by: tile) {
            for j0 in stride(from: 0, to: columns, by: tile) {
                for i in i0..<min(rows, i0 + tile) {
                    for j in j0..<min(columns, j0 + tile) { weight[j * rows + i] += sign * delta[i * columns + j] }
                }
            }
        }
    }

    /// `output = inputᵀ` for `input` `[rows, columns]` (output `[columns, rows]`).
    public static func transpose(_ input: UnsafeBufferPointer<Float>, rows: Int, columns: Int,
                                 into output: UnsafeMutableBufferPointer<Float>) {
        precondition(input.count == rows * columns && output.count == input.count)
        let tile = 32
        for i0 in stride(from: 0, to: rows, by: tile) {
            for j0 in stride(from: 0, to: columns, by: tile) {
                for i in i0..<min(rows, i0 + tile) {
                    for j in j0..<min(columns, j0 + tile) { output[j * rows + i] = input[i * columns + j] }
                }
            }
        }
    }
}
