import AdaptRuntime

/// `adaptc merge`: the whole base checkpoint with each targeted weight replaced
/// by `W + ΔW` (or `W − ΔW` with `--unmerge`), for DoRA pairs by
/// `W' = m ⊙ (W + s·B·A)/‖W + s·B·A‖_row` (no unmerge); other tensors, dtypes and the
/// metadata are carried through unchanged. A sharded base gives a sharded folder.
public enum MergeCommand {
    public static func run(specPath: String, adapterPath: String, basePath: String, output: String,
                           unmerge: Bool, task taskName: String? = nil, threads: Int) throws -> String {
        let (checked, plan) = try SpecLoader.loadPlanned(path: specPath)
        let task = try TaskChoice.resolve(taskName, in: plan, specPath: specPath, command: "merge")
        let template = try WeightKeyTemplate(checked, for: "merge")
        let interpreter = try AdapterFiles.load(adapterPath, checked: checked, plan: plan, threads: threads)
        // Unmerging DoRA would need ‖W + s·B·A‖_row of the original W, which the
        // merged rows (each of norm m) no longer hold: refused, not guessed.
        if unmerge, let group = checked.groups.first(where: { $0.group.dora }) {
            throw UserError("\(specPath): group '\(group.name)' is DoRA: W' = m ⊙ V/‖V‖_row keeps only the direction of V = W + s·B·A, so merge --unmerge cannot recover W; keep the base checkpoint instead")
        }
        let base = try BaseCheckpoint.open(basePath)
        let targets = try base.targets(plan, template: template)
        try CheckpointRewrite.write(base, targets: targets, to: output, action: unmerge ? "W − ΔW" : "W + ΔW",
                                    sign: unmerge ? -1 : 1, transposed: template.isTransposed, threads: threads) { _, pair, delta in
            guard pair.dora != nil else {
                if let task {
                    try interpreter.materialize(layer: pair.layer, module: pair.module, task: task, into: delta)
                } else {
                    try interpreter.materialize(layer: pair.layer, module: pair.module, into: delta)
                }
                return
            }
            // DoRA: the change is W' − W, which needs this W (read once more, one weight at a time).
            let weight = try base.weight(template.key(pair), for: pair, template: template)
            try weight.withUnsafeBufferPointer {
                try interpreter.materialize(layer: pair.layer, module: pair.module, base: $0, into: delta)
            }
        }
        return "\(unmerge ? "unmerge" : "merge"): \(targets.count) weights of \(base.tensorCount) tensors → \(output)"
    }
}
