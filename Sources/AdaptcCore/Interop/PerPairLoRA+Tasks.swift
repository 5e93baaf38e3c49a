import AdaptRuntime

extension CheckedSpec {
    /// The pairs one task sees as per-pair LoRA (`export-peft --task`): a lora
    /// group with tasks gives that task's factors, and none where it has no
    /// slice for the task (its ΔW is zero there); a group without tasks is the
    /// same for every task. nil `task`: the spec's pairs as without tasks.
    func forEachPerPairLoRA(plan: Plan, parameters: UnsafeMutableBufferPointer<Float>, task: String?,
                            _ body: (ResolvedGroup, PairPlan, _ a: [Float], _ b: [Float]) throws -> Void) throws {
        guard let task else { return try forEachPerPairLoRA(plan: plan, parameters: parameters, body) }
        for group in groups {
            guard let planned = plan.groups.first(where: { $0.name == group.name }) else { continue }
            if !planned.tasks.isEmpty, !planned.tasks.contains(task) { continue }
            let groupTask = planned.tasks.isEmpty ? nil : task
            for pair in planned.pairs {
                let (a, b) = LoRAPairs.factors(of: pair, in: group, plan: plan, parameters: parameters, task: groupTask)
                try body(group, pair, a, b)
            }
        }
    }
}
