/// What every generated adapter type provides (DESIGN §6), so apps, tests and
/// benchmarks can drive any of them the same way. Array conveniences live in
/// the extension below; the generated code holds only the shape-specialised parts.
public protocol GeneratedAdapter: AnyObject {
    associatedtype Module: RawRepresentable, CaseIterable, Hashable where Module.RawValue == Int

    static var specName: String { get }
    /// Hash of the spec's meaning; adapter files must carry it (`adaptc.hash`).
    static var specHash: String { get }
    static var parameterLayout: [ParameterTensor] { get }
    static var parameterCount: Int { get }
    static func moduleName(_ module: Module) -> String
    static func shape(of module: Module) -> (out: Int, in: Int)

    var storage: AdapterStorage { get }

    init(threads: Int)
    func prepare()
    func forward(layer: Int, module: Module, x: UnsafeBufferPointer<Float>, rows n: Int,
                 y: UnsafeMutableBufferPointer<Float>) throws
    /// Several modules of one layer reading the same `x`: `outputs[i] += x·ΔW[layer, modules[i]]ᵀ`.
    func forward(layer: Int, modules: [Module], x: UnsafeBufferPointer<Float>, rows n: Int,
                 outputs: [UnsafeMutableBufferPointer<Float>]) throws
    func backward(layer: Int, module: Module, x: UnsafeBufferPointer<Float>, dy: UnsafeBufferPointer<Float>,
                  rows n: Int, dx: UnsafeMutableBufferPointer<Float>) throws
    func finishBackward()
    func materialize(layer: Int, module: Module, into delta: UnsafeMutableBufferPointer<Float>) throws
}

extension GeneratedAdapter {
    public var parameters: UnsafeMutableBufferPointer<Float> { storage.parameters }
    public var gradients: UnsafeMutableBufferPointer<Float> { storage.gradients }
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
    public func merge(layer: Int, module: Module, into weight: UnsafeMutableBufferPointer<Float>, unmerge: Bool = false) throws {
        let delta = try materialize(layer: layer, module: module)
        guard weight.count == delta.count else {
            throw AdapterError.shapeMismatch(spec: Self.specName, argument: "W", count: weight.count, expected: delta.count)
        }
        MergeArithmetic.add(delta, to: weight, sign: unmerge ? -1 : 1)
    }
}

/// The shared arithmetic of merge and unmerge.
public enum MergeArithmetic {
    public static func add(_ delta: [Float], to weight: UnsafeMutableBufferPointer<Float>, sign: Float) {
        for i in 0..<delta.count { weight[i] += sign * delta[i] }
    }
}
