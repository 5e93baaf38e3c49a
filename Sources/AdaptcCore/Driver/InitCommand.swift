import AdaptRuntime

/// `adaptc init`: writes a fresh adapter file for a spec (DESIGN §3) and, with
/// `--residual`, the base checkpoint with each targeted W replaced by W − s·B·A
/// (pissa, milora, olora) or by the dequantised quantised base Q (loftq).
public enum InitCommand {
    /// Initialises every group; returns one line per group saying what was done.
    public static func run(specPath: String, output: String, seed: UInt64?, basePath: String?,
                           residualPath: String?, threads: Int = 0) throws -> [String] {
        let (checked, plan) = try SpecLoader.loadPlanned(path: specPath)
        if basePath != nil || residualPath != nil, !InitStage.readsBase(checked) {
            throw UserError("--base and --residual apply to init methods that read the base weights (pissa, milora, olora, loftq, tt-svd, hosvd, hooi, cp-als) and to DoRA groups; this spec has none")
        }
        if residualPath != nil, basePath == nil {
            throw UserError("--residual needs --base (the checkpoint the residual is taken from)")
        }
        let base = try basePath.map(BaseCheckpoint.open)
        try MemoryBudget.require(floats: 2 * plan.parameterCount, for: "the adapter's parameters and gradients")
        let storage = AdapterStorage(parameterCount: plan.parameterCount, threads: 1)
        let reports = try InitStage.run(checked, plan: plan, into: storage, seed: seed, base: base, threads: threads)
        var lines = reports.map(\.line)
        // The residual is recomputed tensor by tensor from the stored factors
        // while the base streams through, so no second copy of the model is held.
        var residual: (BaseCheckpoint, [String: PairPlan], String, WeightKeyTemplate)?
        if let residualPath, let base {
            let template = try WeightKeyTemplate(checked, for: "--residual")
            let targeted = plan.groups.filter { group in
                checked.groups.first { $0.name == group.name }.map { InitStage.baseMethods.contains($0.group.initialization.method) } ?? false
            }.flatMap(\.pairs)
            residual = (base, try base.targets(targeted, template: template), residualPath, template)
        }
        try storage.write(layout: plan.parameters, metadata: AdapterFiles.metadata(checked), to: output)
        lines.append("wrote \(output)")
        if let (base, targets, path, template) = residual {
            let interpreter = PlanInterpreter(plan: plan, threads: threads)
            _ = interpreter.storage.parameters.update(fromContentsOf: storage.parameters)
            interpreter.prepare()
            // LoftQ's weights are replaced by Q, dequantised from the codes the stage kept.
            var quantised: [String: (quantiser: Quantiser, base: Quantiser.Quantised)] = [:]
            for report in reports { quantised.merge(report.quantisedBases) { first, _ in first } }
            try CheckpointRewrite.write(base, targets: targets, to: path,
                                        action: quantised.isEmpty ? "W − s·B·A" : "the residual (W − s·B·A, or LoftQ's Q)",
                                        sign: -1, transposed: template.isTransposed, threads: threads,
                                        replacing: Set(quantised.keys)) { key, pair, delta in
                if let (quantiser, q) = quantised[key] {
                    quantiser.dequantise(q, into: delta, threads: threads)
                } else {
                    try interpreter.materialize(layer: pair.layer, module: pair.module, into: delta)
                }
            }
            lines.append("wrote \(path) (\(targets.count) residual weights of \(base.tensorCount) tensors)")
        }
        return lines
    }
}
