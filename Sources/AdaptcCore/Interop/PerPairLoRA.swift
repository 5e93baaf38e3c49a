import AdaptRuntime

/// A group read as one LoRA pair per (layer, module) — A `[r, in]` and B
/// `[out, r]` with ΔW = s·B·A exactly — which is what PEFT and GGUF export
/// write (DESIGN §5). Export asks `Structure.perPairLoRA` rather than naming a
/// structure: lora conforms (`LoRAPairs`); a structure that can give each pair
/// its exact A and B conforms in its own file and adds its case there.
protocol PerPairLoRA {
    /// One pair's stored (or exactly derived) A and B, row-major: of `task`'s
    /// slice in a group with tasks, the group's own for nil.
    static func factors(of pair: PairPlan, in group: ResolvedGroup, plan: Plan,
                        parameters: UnsafeMutableBufferPointer<Float>, task: String?) -> (a: [Float], b: [Float])
}

extension CheckedSpec {
    /// Every pair of every group read as per-pair LoRA, groups in spec order and
    /// pairs in plan order, with its A and B: what PEFT and GGUF export write.
    /// With `task` (`export-peft --task`), what that task sees: a group with tasks
    /// gives that task's factors, and no pairs where it has no slice for the task
    /// (its ΔW is zero there); a group without tasks is the same for every task.
    /// nil `task` needs a spec without tasks. The caller has refused groups whose
    /// structure has no per-pair view.
    func forEachPerPairLoRA(plan: Plan, parameters: UnsafeMutableBufferPointer<Float>, task: String? = nil,
                            _ body: (ResolvedGroup, PairPlan, _ a: [Float], _ b: [Float]) throws -> Void) rethrows {
        for group in groups {
            guard let view = group.structure.perPairLoRA else { preconditionFailure("\(group.name) has no per-pair LoRA view") }
            guard let planned = plan.groups.first(where: { $0.name == group.name }) else { continue }
            if let task, !planned.tasks.isEmpty, !planned.tasks.contains(task) { continue }
            for pair in planned.pairs {
                let (a, b) = view.factors(of: pair, in: group, plan: plan, parameters: parameters,
                                          task: planned.tasks.isEmpty ? nil : task)
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
