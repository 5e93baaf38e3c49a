/// Which modules of a layer read one and the same input `x` — a fact about the
/// model, declared by the spec's `model.inputs` (DESIGN §5). The layer-fused
/// forward and the shared input-side products apply to exactly these sets.
enum InputSets {
    /// True when every module of the group reads the same input.
    static func shareInput(_ group: ResolvedGroup, in spec: AdapterSpec) -> Bool {
        let names = group.modules.map(\.name)
        guard names.count > 1 else { return false }
        return spec.model.inputSets.contains { set in names.allSatisfy(set.modules.contains) }
    }
}
