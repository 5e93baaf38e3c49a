/// Gauge-aware preconditioned gradient step for lora pairs: ScaledGD (Tong,
/// Ma & Chi, "Accelerating ill-conditioned low-rank matrix estimation via
/// scaled gradient descent", JMLR 2021), the Riemannian preconditioner of
/// Zhang & Pilanci ("Riemannian preconditioned LoRA", ICML 2024) with plain
/// SGD. For ΔW = s·B·A, B `[out, r]`, A `[r, in]`:
///
///     B ← B − η · ∂B · (A·Aᵀ + δ·I)⁻¹
///     A ← A − η · (Bᵀ·B + δ·I)⁻¹ · ∂A
///
/// each factor's gradient times the damped inverse r×r Gram matrix of the
/// other factor, both from the factors before the step. With δ = 0 the step
/// is invariant to the gauge (B, A) → (B·G, G⁻¹·A): ΔW after the step is the
/// same for every invertible G, which plain AdamW's is not. δ > 0 keeps the
/// step defined when a factor is rank-deficient (B = 0 at the usual init) and
/// breaks invariance in proportion.
///
/// Tensors that belong to no lora pair (tensor-train cores, CP/Tucker
/// factors) get the plain gradient step `p ← p − η·∂p`. Optional decoupled
/// weight decay `p ← p·(1 − η·λ)` comes first (it is not gauge invariant).
/// Grams and solves are computed in Double, sequentially: deterministic.
public struct PreconditionedStep: AdapterOptimizer, Sendable {
    /// Base learning rate η₀; step t uses `learningRate · schedule(t)`.
    public var learningRate: Float
    /// δ added to the diagonal of each r×r Gram matrix.
    public var damping: Double
    /// Decoupled weight decay λ (per unit learning rate); 0 keeps gauge invariance.
    public var weightDecay: Float
    /// Factor of `learningRate` per step.
    public var schedule: LearningRateSchedule
    /// Steps done so far.
    public private(set) var stepCount = 0
    /// The tensors updated.
    public let layout: [ParameterTensor]
    /// The lora pairs found in `layout`, preconditioned together.
    public let loraPairs: [LoRAFactorPair]
    private var direction: [Double]
    /// The parameter ranges a step updates: every tensor `trainable` (DESIGN §3).
    /// A frozen factor still preconditions its partner's gradient; it is never written.
    private let updated: [Range<Int>]

    /// A step for parameters laid out as `layout`.
    public init(layout: [ParameterTensor], learningRate: Float, damping: Double = 1e-4, weightDecay: Float = 0,
                schedule: LearningRateSchedule = .constant) {
        self.layout = layout
        self.learningRate = learningRate
        self.damping = damping
        self.weightDecay = weightDecay
        self.schedule = schedule
        loraPairs = LoRAFactorPair.pairs(in: layout)
        direction = [Double](repeating: 0, count: layout.map { $0.offset + $0.count }.max() ?? 0)
        updated = TrainableRanges.of(layout, count: direction.count)
    }

    /// A step for an adapter type's `parameterLayout`.
    public init<Adapter: GeneratedAdapter>(for adapter: Adapter.Type, learningRate: Float, damping: Double = 1e-4,
                                           weightDecay: Float = 0, schedule: LearningRateSchedule = .constant) {
        self.init(layout: Adapter.parameterLayout, learningRate: learningRate, damping: damping,
                  weightDecay: weightDecay, schedule: schedule)
    }

    /// Number of parameters this step updates.
    public var parameterCount: Int { direction.count }

    /// Forgets the step count (the schedule restarts).
    public mutating func reset() { stepCount = 0 }

    /// One preconditioned step (see the type); throws, changing nothing, on a wrong count, a NaN/Inf gradient or a singular Gram matrix.
    public mutating func step(parameters: UnsafeMutableBufferPointer<Float>, gradients: UnsafeBufferPointer<Float>) throws {
        try OptimizerArguments.check(parameters: parameters.count, gradients: gradients, layout: layout, expected: parameterCount)
        // Directions first, from the parameters before the step; a singular Gram throws with nothing changed.
        for i in direction.indices { direction[i] = Double(gradients[i]) }
        for pair in loraPairs where pair.a.trainable || pair.b.trainable {
            try precondition(pair, parameters: UnsafeBufferPointer(parameters))
        }
        stepCount += 1
        let rate = Double(learningRate) * Double(schedule(stepCount))
        let decay = 1 - rate * Double(weightDecay)
        for range in updated {
            for i in range { parameters[i] = Float(Double(parameters[i]) * decay - rate * direction[i]) }
        }
    }

    /// Replaces the pair's gradients in `direction` by their preconditioned forms.
    private mutating func precondition(_ pair: LoRAFactorPair, parameters: UnsafeBufferPointer<Float>) throws {
        let r = pair.rank, n = pair.inFeatures, m = pair.outFeatures
        let a = (0..<r * n).map { Double(parameters[pair.a.offset + $0]) }
        let b = (0..<m * r).map { Double(parameters[pair.b.offset + $0]) }
        // A·Aᵀ + δI and Bᵀ·B + δI, r×r.
        var gramA = [Double](repeating: 0, count: r * r), gramB = [Double](repeating: 0, count: r * r)
        for i in 0..<r {
            for j in 0...i {
                var sa = 0.0, sb = 0.0
                for k in 0..<n { sa += a[i * n + k] * a[j * n + k] }
                for k in 0..<m { sb += b[k * r + i] * b[k * r + j] }
                gramA[i * r + j] = sa; gramA[j * r + i] = sa
                gramB[i * r + j] = sb; gramB[j * r + i] = sb
            }
            gramA[i * r + i] += damping
            gramB[i * r + i] += damping
        }
        // A frozen factor (`train:`) needs no direction, so its partner's Gram is not needed either.
        let factorA = pair.b.trainable ? Cholesky(gramA, order: r) : nil
        let factorB = pair.a.trainable ? Cholesky(gramB, order: r) : nil
        if pair.b.trainable, factorA == nil { throw AdapterError.singularGram(key: pair.a.key, damping: damping) }
        if pair.a.trainable, factorB == nil { throw AdapterError.singularGram(key: pair.b.key, damping: damping) }
        // ∂B·(A·Aᵀ + δI)⁻¹: each row of ∂B (length r) solved against the symmetric Gram.
        var row = [Double](repeating: 0, count: r)
        if let factorA { for o in 0..<m {
            for k in 0..<r { row[k] = direction[pair.b.offset + o * r + k] }
            factorA.solve(&row)
            for k in 0..<r { direction[pair.b.offset + o * r + k] = row[k] }
        } }
        // (Bᵀ·B + δI)⁻¹·∂A: each column of ∂A (length r).
        if let factorB { for i in 0..<n {
            for k in 0..<r { row[k] = direction[pair.a.offset + k * n + i] }
            factorB.solve(&row)
            for k in 0..<r { direction[pair.a.offset + k * n + i] = row[k] }
        } }
    }
}

/// L·Lᵀ of a symmetric positive definite matrix (row-major, Double), for the
/// small r×r solves of ``PreconditionedStep``; nil when it is not positive definite.
struct Cholesky {
    let lower: [Double]
    let order: Int

    init?(_ matrix: [Double], order r: Int) {
        var l = [Double](repeating: 0, count: r * r)
        // Relative to the largest diagonal entry, so a Gram that is singular
        // up to rounding counts as singular rather than giving huge steps.
        let scale = (0..<r).map { matrix[$0 * r + $0] }.max() ?? 0
        for j in 0..<r {
            var d = matrix[j * r + j]
            for k in 0..<j { d -= l[j * r + k] * l[j * r + k] }
            guard d > scale * 1e-14, d > 0, d.isFinite else { return nil }
            let pivot = d.squareRoot()
            l[j * r + j] = pivot
            for i in j + 1..<r {
                var s = matrix[i * r + j]
                for k in 0..<j { s -= l[i * r + k] * l[j * r + k] }
                l[i * r + j] = s / pivot
            }
        }
        lower = l
        order = r
    }

    /// x ← (L·Lᵀ)⁻¹·x.
    func solve(_ x: inout [Double]) {
        let r = order
        for i in 0..<r {
            var s = x[i]
            for k in 0..<i { s -= lower[i * r + k] * x[k] }
            x[i] = s / lower[i * r + i]
        }
        for i in stride(from: r - 1, through: 0, by: -1) {
            var s = x[i]
            for k in i + 1..<r { s -= lower[k * r + i] * x[k] }
            x[i] = s / lower[i * r + i]
        }
    }
}
