import AdaptRuntime

/// What `adaptc init` asks of a structure (DESIGN §3), so `InitStage` names no
/// structure: lora's conformance is `LoRAGroupInit`, the tensor structures'
/// `TensorGroupInit`. A new structure conforms in its own file and adds its
/// case to `Structure.initialiser`.
protocol GroupInitialiser {
    /// `zero` or `gaussian`: fills the group's stored tensors (`tensors`, as the
    /// plan lays them out in the parameter buffer at `parameters`) so ΔW = 0.
    static func fillRandom(_ group: ResolvedGroup, tensors: [ParameterTensor], method: InitMethod, seed: UInt64,
                           into parameters: UnsafeMutablePointer<Float>)

    /// A method that reads the base weights (one `InitRules.methods(for:)` lets
    /// the structure have): decomposes them into the group's stored tensors and
    /// says what it did in `report`.
    static func decompose(_ group: ResolvedGroup, settings: InitSettings, seed: UInt64, base: BaseCheckpoint,
                          template: WeightKeyTemplate, storage: AdapterStorage, plan: Plan, threads: Int,
                          report: inout InitStage.GroupReport) throws
}

extension Structure {
    /// Who initialises a group of this structure.
    var initialiser: GroupInitialiser.Type {
        switch self {
        case .lora: return LoRAGroupInit.self
        case .tensorTrain, .cp, .tucker: return TensorGroupInit.self
        }
    }
}
