extension GeneratedAdapter {
    /// Sets every gradient to zero (gradients accumulate across `backward`
    /// calls until zeroed); also drops gradients of prepared state not yet
    /// pushed by `finishBackward()`.
    public func zeroGradients() {
        storage.zeroGradients()
        storage.preparedGradients.update(repeating: 0)
    }

    /// `finishBackward()`, then clips `gradients` by global norm
    /// (``GradientClipping/clipGlobalNorm(_:maxNorm:)``); returns the norm before clipping.
    @discardableResult
    public func clipGradients(maxNorm: Float) throws -> Float {
        finishBackward()
        return try GradientClipping.clipGlobalNorm(gradients, maxNorm: maxNorm)
    }

    /// ‖gradients‖₂ after `finishBackward()`.
    public func gradientNorm() -> Double {
        finishBackward()
        return GradientClipping.globalNorm(UnsafeBufferPointer(gradients))
    }
}
