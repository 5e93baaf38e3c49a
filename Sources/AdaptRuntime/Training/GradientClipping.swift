/// Clipping by global norm (Pascanu, Mikolov & Bengio 2013; PyTorch's
/// `clip_grad_norm_`): when ‖g‖₂ over all gradients exceeds `maxNorm`, every
/// gradient is scaled by `maxNorm / (‖g‖₂ + 1e-6)`. The norm is summed in
/// Double, sequentially: deterministic.
public enum GradientClipping {
    /// Clips `gradients` in place; returns the norm before clipping. Throws,
    /// changing nothing, when the norm is NaN or infinite (a gradient is).
    @discardableResult
    public static func clipGlobalNorm(_ gradients: UnsafeMutableBufferPointer<Float>, maxNorm: Float) throws -> Float {
        let norm = globalNorm(UnsafeBufferPointer(gradients))
        guard norm.isFinite else {
            let bad = gradients.firstIndex { !$0.isFinite } ?? 0
            throw AdapterError.nonFiniteGradient(key: "gradients", index: bad)
        }
        let limit = Double(maxNorm)
        if norm > limit {
            let factor = limit / (norm + 1e-6)
            for i in gradients.indices { gradients[i] = Float(Double(gradients[i]) * factor) }
        }
        return Float(norm)
    }

    /// ‖g‖₂ over every entry, in Double.
    public static func globalNorm(_ gradients: UnsafeBufferPointer<Float>) -> Double {
        var sum = 0.0
        for g in gradients { sum += Double(g) * Double(g) }
        return sum.squareRoot()
    }
}
