import Foundation

/// AdamW (Loshchilov & Hutter, "Decoupled Weight Decay Regularization", 2019,
/// Algorithm 2), step for step as PyTorch's `torch.optim.AdamW`:
///
///     m ← β₁·m + (1−β₁)·g,   v ← β₂·v + (1−β₂)·g²
///     p ← p·(1 − η·λ) − η · (m / (1−β₁ᵗ)) / (√(v / (1−β₂ᵗ)) + ε)
///
/// with η = `learningRate · schedule(t)`, t = 1, 2, … Weight decay λ is
/// decoupled (applied to every parameter, not added to the gradient). Moments
/// are stored as Float like PyTorch's; each update is computed in Double.
/// Sequential and deterministic.
public struct AdamW: AdapterOptimizer, Sendable {
    /// Base learning rate η₀; step t uses `learningRate · schedule(t)`.
    public var learningRate: Float
    /// Decay of the first moment (β₁).
    public var beta1: Float
    /// Decay of the second moment (β₂).
    public var beta2: Float
    /// Added to √v̂ in the denominator (ε).
    public var epsilon: Float
    /// Decoupled weight decay λ (per unit learning rate).
    public var weightDecay: Float
    /// Factor of `learningRate` per step.
    public var schedule: LearningRateSchedule
    /// Steps done so far.
    public private(set) var stepCount = 0
    /// The tensors updated, for error messages (`parameterLayout` of an adapter).
    public let layout: [ParameterTensor]
    private var firstMoment: [Float]
    private var secondMoment: [Float]
    /// The parameter ranges a step updates: every tensor `trainable` (DESIGN §3);
    /// frozen ones are never written and keep zero moments.
    private let updated: [Range<Int>]

    /// An optimizer for parameters laid out as `layout`; defaults are PyTorch's.
    public init(layout: [ParameterTensor], learningRate: Float = 1e-3, beta1: Float = 0.9, beta2: Float = 0.999,
                epsilon: Float = 1e-8, weightDecay: Float = 0.01, schedule: LearningRateSchedule = .constant) {
        self.layout = layout
        self.learningRate = learningRate
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
        self.weightDecay = weightDecay
        self.schedule = schedule
        let count = layout.map { $0.offset + $0.count }.max() ?? 0
        firstMoment = [Float](repeating: 0, count: count)
        secondMoment = [Float](repeating: 0, count: count)
        updated = TrainableRanges.of(layout, count: count)
    }

    /// An optimizer for an adapter type's `parameterLayout`.
    public init<Adapter: GeneratedAdapter>(for adapter: Adapter.Type, learningRate: Float = 1e-3, beta1: Float = 0.9,
                                           beta2: Float = 0.999, epsilon: Float = 1e-8, weightDecay: Float = 0.01,
                                           schedule: LearningRateSchedule = .constant) {
        self.init(layout: Adapter.parameterLayout, learningRate: learningRate, beta1: beta1, beta2: beta2,
                  epsilon: epsilon, weightDecay: weightDecay, schedule: schedule)
    }

    /// Number of parameters this optimizer updates.
    public var parameterCount: Int { firstMoment.count }

    /// Forgets the moments and the step count (a fresh run with the same settings).
    public mutating func reset() {
        stepCount = 0
        firstMoment = [Float](repeating: 0, count: firstMoment.count)
        secondMoment = [Float](repeating: 0, count: secondMoment.count)
    }

    /// One AdamW step (see the type); throws, changing nothing, on a wrong count or a NaN/Inf gradient.
    public mutating func step(parameters: UnsafeMutableBufferPointer<Float>, gradients: UnsafeBufferPointer<Float>) throws {
        try OptimizerArguments.check(parameters: parameters.count, gradients: gradients, layout: layout, expected: parameterCount)
        stepCount += 1
        let t = Double(stepCount)
        let rate = Double(learningRate) * Double(schedule(stepCount))
        let b1 = Double(beta1), b2 = Double(beta2), eps = Double(epsilon)
        let correction1 = 1 - pow(b1, t), correction2 = 1 - pow(b2, t)
        let decay = 1 - rate * Double(weightDecay)
        firstMoment.withUnsafeMutableBufferPointer { m in
            secondMoment.withUnsafeMutableBufferPointer { v in
                for range in updated { for i in range {
                    let g = Double(gradients[i])
                    let mi = b1 * Double(m[i]) + (1 - b1) * g
                    let vi = b2 * Double(v[i]) + (1 - b2) * g * g
                    m[i] = Float(mi)
                    v[i] = Float(vi)
                    let update = (Double(m[i]) / correction1) / ((Double(v[i]) / correction2).squareRoot() + eps)
                    parameters[i] = Float(Double(parameters[i]) * decay - rate * update)
                } }
            }
        }
    }
}
