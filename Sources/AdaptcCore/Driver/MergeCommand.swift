import AdaptRuntime

/// `adaptc merge`: the whole base checkpoint with each targeted weight replaced
/// by `W + ΔW` (or `W − ΔW` with `--unmerge`); other tensors, dtypes and the
/// metadata are carried through unchanged.
public enum MergeCommand {
    public static func run(specPath: String, adapterPath: String, basePath: String, output: String,
                           unmerge: Bool, threads: Int) throws -> String {
        let (checked, plan) = try SpecLoader.loadPlanned(path: specPath)
        guard let template = checked.spec.model.weightsKey else {
            throw UserError("\(specPath): merge needs model.weights.key (e.g. \"encoder.layer.{layer}.attention.self.{module}.weight\")")
        }
        let interpreter = try AdapterFiles.load(adapterPath, checked: checked, plan: plan, threads: threads)
        let base = try SafetensorsFile.read(path: basePath)
        var targets: [String: PairPlan] = [:]
        for pair in plan.pairs {
            let key = template.replacingOccurrences(of: "{layer}", with: String(pair.layer))
                .replacingOccurrences(of: "{module}", with: pair.module)
            guard let entry = base.entry(key) else {
                throw UserError("\(basePath): no tensor \"\(key)\" for pair \(pair.key) (model.weights.key is \"\(template)\")")
            }
            guard entry.shape == [pair.outFeatures, pair.inFeatures] else {
                throw UserError("\(basePath): tensor \"\(key)\" has shape \(entry.shape), the spec says [\(pair.outFeatures), \(pair.inFeatures)]")
            }
            guard entry.dtype.isFloatingComputable else {
                throw UserError("\(basePath): tensor \"\(key)\" is \(entry.dtype.rawValue); merge needs F32, F16 or BF16")
            }
            targets[key] = pair
        }
        var writer = SafetensorsWriter(metadata: base.metadata)
        for entry in base.tensors {
            guard let pair = targets[entry.name] else {
                writer.add(entry.name, dtype: entry.dtype, shape: entry.shape, bytes: try base.rawBytes(entry.name))
                continue
            }
            var weight = try base.floats(entry.name)
            try weight.withUnsafeMutableBufferPointer {
                try interpreter.merge(layer: pair.layer, module: pair.module, into: $0, unmerge: unmerge)
            }
            for i in weight.indices {
                // An overflow would write Inf, which no reader (adaptc included) accepts back.
                guard FloatNarrowing.isFinite(weight[i], as: entry.dtype) else {
                    throw UserError("\(basePath): tensor \"\(entry.name)\": W \(unmerge ? "−" : "+") ΔW overflows \(entry.dtype.rawValue) at element \(i) (\(weight[i]))")
                }
            }
            writer.add(entry.name, dtype: entry.dtype, shape: entry.shape, bytes: FloatNarrowing.bytes(weight, as: entry.dtype))
        }
        try writer.write(to: output)
        return "\(unmerge ? "unmerge" : "merge"): \(targets.count) weights of \(base.tensors.count) tensors → \(output)"
    }
}
