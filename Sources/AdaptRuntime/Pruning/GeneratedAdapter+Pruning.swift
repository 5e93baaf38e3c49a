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
        let values = storage.parameters
        return LoRAFactors(a: Array(values[a.offset..<a.offset + a.count]), b: Array(values[b.offset..<b.offset + b.count]),
                           rank: a.shape[0], outFeatures: b.shape[0], inFeatures: a.shape[1], scale: scale)
    }
}
