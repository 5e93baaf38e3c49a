import AdaptRuntime

/// `adaptc init`: writes a fresh adapter file for a spec (DESIGN §3).
public enum InitCommand {
    /// Initialises every group; returns one line per group saying what was done.
    public static func run(specPath: String, output: String, seed: UInt64?, basePath: String?,
                           residualPath: String?) throws -> [String] {
        let (checked, plan) = try SpecLoader.loadPlanned(path: specPath)
        try MemoryBudget.require(floats: 2 * plan.parameterCount, for: "the adapter's parameters and gradients")
        let storage = AdapterStorage(parameterCount: plan.parameterCount, threads: 1)
        var report: [String] = []
        for group in checked.groups {
            let settings = group.group.initialization
            let seed = seed ?? settings.seed ?? 0
            switch settings.method {
            case .zero, .gaussian:
                break
            case .pissa, .milora, .olora, .ttSVD, .hosvd, .cpALS, .recycle:
                throw UserError("\(specPath): group '\(group.name)': init method '\(settings.method.rawValue)' is not supported yet (zero and gaussian are)")
            }
            if basePath != nil || residualPath != nil {
                throw UserError("--base and --residual apply to SVD-based init methods; group '\(group.name)' uses '\(settings.method.rawValue)'")
            }
            let keys = plan.parameters.filter { $0.key.hasPrefix(group.name + ".") }
            for tensor in keys {
                var random = SeededRandom(seed: seed, stream: tensor.key)
                let target = storage.parameters.baseAddress! + tensor.offset
                if tensor.key.hasSuffix(".A") {
                    // PEFT: kaiming_uniform_(a=√5) on [r, in] → U(−1/√in, 1/√in);
                    // gaussian: N(0, (1/r)²). B stays zero, so ΔW = 0 at the start.
                    let (rank, inFeatures) = (tensor.shape[0], tensor.shape[1])
                    for i in 0..<tensor.count {
                        target[i] = settings.method == InitMethod.gaussian
                            ? random.normal(standardDeviation: 1 / Double(rank))
                            : random.uniform(1 / Double(inFeatures).squareRoot())
                    }
                }
            }
            report.append("init \(group.name): \(settings.method.rawValue), seed \(seed), \(keys.count) tensors, \(keys.map(\.count).reduce(0, +)) parameters")
        }
        try storage.write(layout: plan.parameters, metadata: AdapterFiles.metadata(checked), to: output)
        report.append("wrote \(output)")
        return report
    }
}
