import AdaptRuntime

/// A group read as one LoRA pair per (layer, module) — A `[r, in]` and B
/// `[out, r]` with ΔW = s·B·A exactly — which is what PEFT and GGUF export
/// write (DESIGN §5). Export asks `Structure.perPairLoRA` rather than naming a
/// structure: lora conforms (`LoRAPairs`); a structure that can give each pair
/// its exact A and B conforms in its own file and adds its case there.
protocol PerPairLoRA {
    /// One pair's stored (or exactly derived) A and B, row-major.
    static func factors(of pair: PairPlan, in group: ResolvedGroup, plan: Plan,
                        parameters: UnsafeMutableBufferPointer<Float>) -> (a: [Float], b: [Float])
}

extension CheckedSpec {
    /// Every pair of every group read as per-pair LoRA, groups in spec order and
    /// pairs in plan order, with its A and B: what PEFT and GGUF export write.
    /// The caller has refused groups whose structure has no per-pair view.
    func forEachPerPairLoRA(plan: Plan, parameters: UnsafeMutableBufferPointer<Float>,
                            _ body: (ResolvedGroup, PairPlan, _ a: [Float], _ b: [Float]) throws -> Void) rethrows {
        for group in groups {
            guard let view = group.structure.perPairLoRA else { preconditionFailure("\(group.name) has no per-pair LoRA view") }
            for pair in plan.groups.first(where: { $0.name == group.name })?.pairs ?? [] {
                let (a, b) = view.factors(of: pair, in: group, plan: plan, parameters: parameters)
                try body(group, pair, a, b)
            }
        }
    }
}

extension Structure {
    /// How a group of this structure reads as per-pair LoRA; nil where it does
    /// not exactly (a tensor network's pairs share cores, and their ΔW's rank is
    /// not one A·B of the group's rank).
    var perPairLoRA: PerPairLoRA.Type? {
        switch self {
        case .lora: return LoRAPairs.self
        case .tensorTrain, .cp, .tucker: return nil
        }
    }
}
