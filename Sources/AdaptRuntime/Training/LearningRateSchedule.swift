import Foundation

/// The learning rate of step `t` (1-based) as a factor of an optimizer's base
/// `learningRate`: the hook through which an app plugs warm-up, decay or its
/// own rule into ``AdamW`` and ``PreconditionedStep``.
public struct LearningRateSchedule: Sendable {
    /// Factor for step `t`, `t` = 1, 2, …
    public let factor: @Sendable (_ step: Int) -> Float

    /// A schedule from any rule; it must be deterministic for training to be.
    public init(_ factor: @escaping @Sendable (_ step: Int) -> Float) { self.factor = factor }

    /// The factor for step `t`.
    public func callAsFunction(_ step: Int) -> Float { factor(step) }

    /// Factor 1 at every step.
    public static let constant = LearningRateSchedule { _ in 1 }

    /// Linear warm-up from `1/warmup` to 1 over the first `warmup` steps, then
    /// cosine decay to `floor` at step `total` (and `floor` after it), as in
    /// Hugging Face's `get_cosine_schedule_with_warmup` with a floor.
    public static func warmupCosine(warmup: Int, total: Int, floor: Float = 0) -> LearningRateSchedule {
        LearningRateSchedule { step in
            if step <= warmup { return Float(step) / Float(max(warmup, 1)) }
            let decaySteps = max(total - warmup, 1)
            let progress = min(Double(step - warmup) / Double(decaySteps), 1)
            return floor + (1 - floor) * Float(0.5 * (1 + cos(Double.pi * progress)))
        }
    }
}
