import AdaptRuntime

/// `adaptc merge`: the whole base checkpoint with each targeted weight replaced
/// by `W + ΔW` (or `W − ΔW` with `--unmerge`); other tensors, dtypes and the
/// metadata are carried through unchanged. A sharded base gives a sharded folder.
public enum MergeCommand {
    public static func run(specPath: String, adapterPath: String, basePath: String, output: String,
                           unmerge: Bool, threads: Int) throws -> String {
        let (checked, plan) = try SpecLoader.loadPlanned(path: specPath)
        let template = try WeightKeyTemplate(checked, for: "merge")
        let interpreter = try AdapterFiles.load(adapterPath, checked: checked, plan: plan, threads: threads)
        let base = try BaseCheckpoint.open(basePath)
        let targets = try base.targets(plan, template: template)
        try CheckpointRewrite.write(base, targets: targets, to: output, action: unmerge ? "W − ΔW" : "W + ΔW",
                                    sign: unmerge ? -1 : 1, transposed: template.isTransposed, threads: threads) { _, pair, delta in
            try interpreter.materialize(layer: pair.layer, module: pair.module, into: delta)
        }
        return "\(unmerge ? "unmerge" : "merge"): \(targets.count) weights of \(base.tensorCount) tensors → \(output)"
    }
}
