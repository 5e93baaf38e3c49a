/// One optimizer step over an adapter's `parameters` given its `gradients`
/// (both in `parameterLayout` order). ``AdamW`` and ``PreconditionedStep``
/// conform, so an app can pick one at run time (`var optimizer: any
/// AdapterOptimizer`).
///
/// Order within one training step, as in PyTorch:
/// 1. `adapter.zeroGradients()` (gradients accumulate until zeroed);
/// 2. `forward`/`backward` over the batch;
/// 3. `adapter.finishBackward()` — gradients of prepared state (tensor
///    structures) reach `gradients` only then;
/// 4. optionally `adapter.clipGradients(maxNorm:)`;
/// 5. `optimizer.step(adapter)`.
///
/// The adapter forms of steps 4 and 5 call `finishBackward()` themselves
/// (it is idempotent), so forgetting step 3 cannot silently drop gradients.
/// A step writes through `adapter.parameters`, which marks prepared state
/// stale, so the next forward sees the new values.
public protocol AdapterOptimizer {
    /// Steps done so far; the next step is `stepCount + 1` (the schedule's argument).
    var stepCount: Int { get }

    /// Updates `parameters` in place from `gradients`. Throws, changing
    /// nothing, on a count other than the one the optimizer was built for or
    /// on a NaN/infinite gradient. Deterministic: the same inputs give the
    /// same bits on every run and thread count.
    mutating func step(parameters: UnsafeMutableBufferPointer<Float>, gradients: UnsafeBufferPointer<Float>) throws
}

extension AdapterOptimizer {
    /// One step on an adapter: `finishBackward()`, then ``step(parameters:gradients:)``
    /// through `adapter.parameters` (so prepared state is re-computed before the next forward).
    public mutating func step<Adapter: GeneratedAdapter>(_ adapter: Adapter) throws {
        adapter.finishBackward()
        try step(parameters: adapter.parameters, gradients: UnsafeBufferPointer(adapter.gradients))
    }
}

/// Argument checks shared by the optimizers.
enum OptimizerArguments {
    /// Counts match the layout and every gradient is finite; nothing is changed before this passes.
    static func check(parameters: Int, gradients: UnsafeBufferPointer<Float>, layout: [ParameterTensor], expected: Int) throws {
        guard parameters == expected else { throw AdapterError.parameterCountMismatch(count: parameters, expected: expected) }
        guard gradients.count == expected else { throw AdapterError.parameterCountMismatch(count: gradients.count, expected: expected) }
        if let bad = gradients.firstIndex(where: { !$0.isFinite }) {
            let key = layout.first { bad >= $0.offset && bad < $0.offset + $0.count }?.key ?? "parameters"
            throw AdapterError.nonFiniteGradient(key: key, index: bad)
        }
    }
}

/// What an optimizer step writes: the whole buffer when every tensor is
/// trainable (the step as it always was), else the trainable tensors' ranges
/// in layout order.
enum TrainableRanges {
    static func of(_ layout: [ParameterTensor], count: Int) -> [Range<Int>] {
        guard layout.contains(where: { !$0.trainable }) else { return [0..<count] }
        return layout.filter(\.trainable).map { $0.offset..<($0.offset + $0.count) }
    }
}
