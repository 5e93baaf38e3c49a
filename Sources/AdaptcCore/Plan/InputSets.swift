/// Which modules of a layer read one and the same input `x` — a fact about the
/// model, declared by the spec's `model.inputs` (DESIGN §5). The layer-fused
/// forward and the shared input-side products apply to exactly these sets.
enum InputSets {
    /// Which set (position in `model.inputs`) a module reads from, if any.
    static func index(of module: String, in sets: [InputSet]) -> Int? {
        sets.firstIndex { $0.modules.contains(module) }
    }

    /// True when every module of the group reads the same input.
    static func shareInput(_ group: ResolvedGroup, in spec: AdapterSpec) -> Bool {
        let sets = group.modules.map { index(of: $0.name, in: spec.model.inputSets) }
        guard sets.count > 1, let first = sets[0] else { return false }
        return sets.allSatisfy { $0 == first }
    }
}
