import AdaptRuntime

/// A lora group's pairs as stored: `GROUP.LAYER.MODULE.A`/`.B`, or
/// `GROUP.shared.MODULE.A`/`.B` for every layer of a shared group.
enum LoRAPairs: PerPairLoRA {
    /// The factors of `task`'s slice (`GROUP.TASK.LAYER.MODULE.A`), or the group's own for nil.
    static func factors(of pair: PairPlan, in group: ResolvedGroup, plan: Plan,
                        parameters: UnsafeMutableBufferPointer<Float>, task: String?) -> (a: [Float], b: [Float]) {
        let block: TensorKey.Block = group.group.shared ? .shared : .layer(pair.layer)
        func values(_ name: TensorKey) -> [Float] {
            guard let tensor = plan.parameter(name) else { preconditionFailure("lora plan without \(name) for \(pair.key)") }
            return tensor.values(in: parameters)
        }
        return (values(.loraA(group.name, block, pair.module, task: task)), values(.loraB(group.name, block, pair.module, task: task)))
    }
}
