extension GeneratedAdapter {
    /// The current (A, B) of one lora pair as `LoRAFactors`, read from the
    /// parameter buffer by key stem (`GROUP.LAYER.MODULE`, or
    /// `GROUP.shared.MODULE` for a shared group) — what an app hands to
    /// `LoRADropPruner` after a few training steps. `scale` is the pair's s
    /// (DESIGN §2), which the app knows from its spec. nil for a stem the layout lacks.
    public func loraFactors(stem: String, scale: Double) -> LoRAFactors? {
        guard let a = Self.parameterLayout.first(where: { $0.key == stem + ".A" }),
              let b = Self.parameterLayout.first(where: { $0.key == stem + ".B" }),
              a.shape.count == 2, b.shape.count == 2, a.shape[0] == b.shape[1] else { return nil }
        return LoRAFactors(a: storedValues(a), b: storedValues(b),
                           rank: a.shape[0], outFeatures: b.shape[0], inFeatures: a.shape[1], scale: scale)
    }
}

extension GeneratedAdapter {
    /// The current cores of one tensor-train group (`GROUP.core.K`, K = 0, 1, …)
    /// and their ranks `[1, r_1, …, 1]`, read from the parameter buffer — what an
    /// app hands to `TTRounding.round` with the group's modes in its `order`.
    /// nil when the layout has no such group or its cores do not chain.
    public func ttCores(group: String) -> (cores: [[Float]], ranks: [Int])? {
        var cores: [[Float]] = [], ranks = [1]
        while let core = Self.parameterLayout.first(where: { $0.name == TensorKey(group: group, role: .core(cores.count)) }) {
            guard core.shape.count == 3, core.shape[0] == ranks.last! else { return nil }
            cores.append(storedValues(core))
            ranks.append(core.shape[2])
        }
        guard !cores.isEmpty, ranks.last == 1 else { return nil }
        return (cores, ranks)
    }
}

extension GeneratedAdapter {
    /// The current core and factors of one Tucker group, read from the parameter
    /// buffer — what an app hands to `TuckerRounding.round` with the group's modes.
    /// - Parameters:
    ///   - group: The group's name (its tensors are `GROUP.core` and `GROUP.factor.MODE`).
    ///   - modes: The group's mode names in its order (`layer`, `module`, `out.0`, …);
    ///     a mode without a factor in the layout is `full` (nil).
    /// - Returns: nil when the layout has no such core.
    public func tuckerTensors(group: String, modes: [String]) -> (core: [Float], factors: [[Float]?])? {
        guard let core = storedValues(TensorKey(group: group, role: .tuckerCore)) else { return nil }
        return (core, modes.map { storedValues(TensorKey(group: group, role: .factor(mode: $0))) })
    }

    /// The current factors `[n_k, R]` of one cp group, read from the parameter
    /// buffer — what an app hands to `CPPruning.prune` with the group's modes.
    /// - Parameters:
    ///   - group: The group's name (its factors are `GROUP.factor.MODE`).
    ///   - modes: The group's mode names in its order (`layer`, `module`, `out`, `in.0`, …).
    /// - Returns: nil when the layout lacks one of the factors.
    public func cpFactors(group: String, modes: [String]) -> [[Float]]? {
        let factors = modes.compactMap { storedValues(TensorKey(group: group, role: .factor(mode: $0))) }
        return factors.count == modes.count && !factors.isEmpty ? factors : nil
    }

    private func storedValues(_ key: TensorKey) -> [Float]? {
        Self.parameterLayout.first { $0.name == key }.map(storedValues)
    }
}

extension GeneratedAdapter {
    /// A stored tensor's current values, read without touching `parameters`
    /// (which marks prepared state and DoRA's norms stale: reading is no update).
    fileprivate func storedValues(_ tensor: ParameterTensor) -> [Float] {
        Array(UnsafeBufferPointer(start: storage.parameterBase + tensor.offset, count: tensor.count))
    }
}
