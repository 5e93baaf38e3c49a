import AdaptRuntime

/// `adaptc eval` and `adaptc materialize`: run an adapter from the command line,
/// through the plan interpreter. Files are keyed `LAYER.MODULE` (DESIGN §5).
public enum EvalCommand {
    /// `y = x·ΔWᵀ` for every input tensor; returns a summary line.
    public static func eval(specPath: String, adapterPath: String, inputPath: String, output: String,
                            basePath: String? = nil, task taskName: String? = nil, threads: Int) throws -> String {
        let (checked, plan) = try SpecLoader.loadPlanned(path: specPath)
        let task = try TaskChoice.resolve(taskName, in: plan, specPath: specPath, command: "eval")
        let interpreter = try AdapterFiles.load(adapterPath, checked: checked, plan: plan, threads: threads)
        let base = try DoRABaseWeights(checked, plan: plan, basePath: basePath, command: "eval")
        let inputs = try SafetensorsFile.read(path: inputPath)
        guard !inputs.tensors.isEmpty else {
            throw UserError("\(inputPath): holds no tensors; eval needs inputs keyed LAYER.MODULE, e.g. 3.query [n, in]")
        }
        // Every key and shape is checked before anything is written; then the
        // outputs stream one at a time, so memory is bounded by the largest one.
        var pairs: [String: PairPlan] = [:]
        for entry in inputs.tensors {
            let pair = try PairKey.pair(entry.name, in: plan, file: inputPath)
            guard entry.shape.count == 2, entry.shape[1] == pair.inFeatures else {
                throw UserError("\(inputPath): tensor \"\(entry.name)\" has shape \(entry.shape), expected [n, \(pair.inFeatures)]")
            }
            pairs[entry.name] = pair
            try base.require(pair)
        }
        let writer = try SafetensorsStreamWriter(path: output, tensors: inputs.tensors.map {
            TensorDeclaration(name: $0.name, shape: [$0.shape[0], pairs[$0.name]!.outFeatures])
        })
        var rows = 0
        for name in writer.order {
            let pair = pairs[name]!, n = inputs.entry(name)!.shape[0]
            let x = try inputs.floats(name)
            // n comes from the file: an output far larger than the input is an error, not a trap.
            let (count, overflow) = n.multipliedReportingOverflow(by: pair.outFeatures)
            let y = try MemoryBudget.floats(overflow ? Int.max : count, for: "the output of \(name)")
            defer { MemoryBudget.release(y) }
            try x.withUnsafeBufferPointer { x in
                guard let weight = try base.weight(pair) else {
                    if let task {
                        try interpreter.forward(layer: pair.layer, module: pair.module, x: x, rows: n, y: y, tasks: .all(task))
                    } else {
                        try interpreter.forward(layer: pair.layer, module: pair.module, x: x, rows: n, y: y)
                    }
                    return
                }
                // DoRA: y = x·Wᵀ in, x·W'ᵀ out; the adapter's own output is the difference.
                try weight.withUnsafeBufferPointer { weight in
                    try interpreter.prepare(base: [pair.key: weight])
                    let baseOutput = DoRABaseWeights.product(x, weight, rows: n, out: pair.outFeatures, in: pair.inFeatures)
                    _ = y.update(fromContentsOf: baseOutput)
                    try interpreter.forward(layer: pair.layer, module: pair.module, x: x, rows: n, y: y)
                    for k in 0..<y.count { y[k] -= baseOutput[k] }
                }
                interpreter.releaseBase(layer: pair.layer, module: pair.module)
            }
            try writer.append(name, floats: UnsafeBufferPointer(y))
            rows += n
        }
        try writer.commit()
        return "eval: \(inputs.tensors.count) pairs, \(rows) rows → \(output)"
    }

    /// `ΔW` `[out, in]` of every pair, scale included, written pair by pair
    /// through one buffer so memory stays bounded by the largest ΔW, not their sum.
    public static func materialize(specPath: String, adapterPath: String, output: String, basePath: String? = nil,
                                   task taskName: String? = nil, threads: Int) throws -> String {
        let (checked, plan) = try SpecLoader.loadPlanned(path: specPath)
        let task = try TaskChoice.resolve(taskName, in: plan, specPath: specPath, command: "materialize")
        let interpreter = try AdapterFiles.load(adapterPath, checked: checked, plan: plan, threads: threads)
        let base = try DoRABaseWeights(checked, plan: plan, basePath: basePath, command: "materialize")
        for pair in plan.pairs { try base.require(pair) }
        let pairs = Dictionary(uniqueKeysWithValues: plan.pairs.map { (PairKey.key(layer: $0.layer, module: $0.module), $0) })
        let writer = try SafetensorsStreamWriter(
            path: output, tensors: plan.pairs.map { TensorDeclaration(name: PairKey.key(layer: $0.layer, module: $0.module), shape: [$0.outFeatures, $0.inFeatures]) })
        let largest = plan.pairs.map { $0.outFeatures * $0.inFeatures }.max() ?? 0
        let buffer = try MemoryBudget.floats(largest, for: "one ΔW")
        defer { MemoryBudget.release(buffer) }
        for key in writer.order {
            let pair = pairs[key]!
            let delta = UnsafeMutableBufferPointer(rebasing: buffer[..<(pair.outFeatures * pair.inFeatures)])
            delta.update(repeating: 0)
            if let weight = try base.weight(pair) {
                try weight.withUnsafeBufferPointer {
                    try interpreter.materialize(layer: pair.layer, module: pair.module, base: $0, into: delta)
                }
            } else if let task {
                try interpreter.materialize(layer: pair.layer, module: pair.module, task: task, into: delta)
            } else {
                try interpreter.materialize(layer: pair.layer, module: pair.module, into: delta)
            }
            try writer.append(key, floats: UnsafeBufferPointer(delta))
        }
        try writer.commit()
        return "materialize: \(plan.pairs.count) pairs → \(output)"
    }
}
