/// Scoped and array access to an adapter's buffers, beside the raw
/// `parameters`/`gradients` views of DESIGN §6 (which stay): these cannot
/// outlive the adapter, and the array forms cover every operation.
extension GeneratedAdapter {
    /// Runs `body` on the parameters (marks prepared state stale, like
    /// `parameters`), keeping the adapter alive for the call. The pointer must
    /// not escape `body`.
    public func withParameters<Result>(_ body: (UnsafeMutableBufferPointer<Float>) throws -> Result) rethrows -> Result {
        try withExtendedLifetime(self) { try body(storage.parameters) }
    }

    /// Runs `body` on the gradients, keeping the adapter alive for the call.
    /// The pointer must not escape `body`. Gradients of prepared state are
    /// included only after `finishBackward()`.
    public func withGradients<Result>(_ body: (UnsafeMutableBufferPointer<Float>) throws -> Result) rethrows -> Result {
        try withExtendedLifetime(self) { try body(storage.gradients) }
    }

    /// A copy of the parameters in `parameterLayout` order (does not mark prepared state stale).
    public var parameterValues: [Float] {
        withExtendedLifetime(self) { Array(UnsafeBufferPointer(start: storage.parameterBase, count: Self.parameterCount)) }
    }

    /// A copy of the gradients (call `finishBackward()` first for tensor structures).
    public var gradientValues: [Float] { withExtendedLifetime(self) { Array(storage.gradients) } }

    /// Replaces every parameter; prepared state is re-computed before the next
    /// forward. Throws ``AdapterError/parameterCountMismatch(count:expected:)``
    /// when `values` does not hold `parameterCount` floats.
    public func setParameterValues(_ values: [Float]) throws {
        guard values.count == Self.parameterCount else {
            throw AdapterError.parameterCountMismatch(count: values.count, expected: Self.parameterCount)
        }
        withParameters { parameters in
            values.withUnsafeBufferPointer { parameters.baseAddress!.update(from: $0.baseAddress!, count: values.count) }
        }
    }

    /// Forward of several modules of one layer that read the same `x`, on
    /// arrays: `result[i] = outputs[i] + x·ΔW[layer, modules[i]]ᵀ` (zeros when
    /// `outputs` is not given).
    public func forward(layer: Int, modules: [Module], x: [Float], rows n: Int, outputs: [[Float]]? = nil) throws -> [[Float]] {
        var results = outputs ?? modules.map { [Float](repeating: 0, count: n * Self.shape(of: $0).out) }
        guard results.count == modules.count else {
            throw AdapterError.outputCountMismatch(spec: Self.specName, modules: modules.count, outputs: results.count)
        }
        // Each output gets its own buffer for the duration of the call.
        var buffers: [UnsafeMutableBufferPointer<Float>] = []
        defer { buffers.forEach { $0.deallocate() } }
        for result in results {
            let buffer = UnsafeMutableBufferPointer<Float>.allocate(capacity: result.count)
            _ = buffer.initialize(from: result)
            buffers.append(buffer)
        }
        try x.withUnsafeBufferPointer { try forward(layer: layer, modules: modules, x: $0, rows: n, outputs: buffers) }
        for i in results.indices { results[i] = Array(buffers[i]) }
        return results
    }

    /// `W + ΔW` (`unmerge`: `W − ΔW`) of one pair on arrays, W `[out, in]` row-major.
    public func merged(layer: Int, module: Module, weight: [Float], unmerge: Bool = false) throws -> [Float] {
        var result = weight
        try result.withUnsafeMutableBufferPointer { try merge(layer: layer, module: module, into: $0, unmerge: unmerge) }
        return result
    }
}

extension GeneratedAdapter {
    /// The fused backward on arrays: `dx + Σ_i dys[i]·ΔW[layer, modules[i]]`
    /// (zeros when `dx` is not given); parameter gradients accumulate in `gradients`.
    public func backward(layer: Int, modules: [Module], x: [Float], dys: [[Float]], rows n: Int, dx: [Float]? = nil) throws -> [Float] {
        guard let first = modules.first else { return dx ?? [] }
        var result = dx ?? [Float](repeating: 0, count: n * Self.shape(of: first).in)
        // Each output gradient gets its own buffer for the duration of the call.
        var buffers: [UnsafeMutableBufferPointer<Float>] = []
        defer { buffers.forEach { $0.deallocate() } }
        for dy in dys {
            let buffer = UnsafeMutableBufferPointer<Float>.allocate(capacity: dy.count)
            _ = buffer.initialize(from: dy)
            buffers.append(buffer)
        }
        try x.withUnsafeBufferPointer { x in
            try result.withUnsafeMutableBufferPointer { dx in
                try backward(layer: layer, modules: modules, x: x, dys: buffers.map { UnsafeBufferPointer($0) }, rows: n, dx: dx)
            }
        }
        return result
    }
}
