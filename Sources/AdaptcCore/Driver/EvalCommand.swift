import AdaptRuntime

/// `adaptc eval` and `adaptc materialize`: run an adapter from the command line,
/// through the plan interpreter. Files are keyed `LAYER.MODULE` (DESIGN §5).
public enum EvalCommand {
    /// `y = x·ΔWᵀ` for every input tensor; returns a summary line.
    public static func eval(specPath: String, adapterPath: String, inputPath: String, output: String,
                            threads: Int) throws -> String {
        let (checked, plan) = try SpecLoader.loadPlanned(path: specPath)
        let interpreter = try AdapterFiles.load(adapterPath, checked: checked, plan: plan, threads: threads)
        let inputs = try SafetensorsFile.read(path: inputPath)
        var writer = SafetensorsWriter()
        var rows = 0
        for entry in inputs.tensors {
            let pair = try PairKey.pair(entry.name, in: plan, file: inputPath)
            guard entry.shape.count == 2, entry.shape[1] == pair.inFeatures else {
                throw UserError("\(inputPath): tensor \"\(entry.name)\" has shape \(entry.shape), expected [n, \(pair.inFeatures)]")
            }
            let n = entry.shape[0]
            let x = try inputs.floats(entry.name)
            var y = [Float](repeating: 0, count: n * pair.outFeatures)
            try x.withUnsafeBufferPointer { x in
                try y.withUnsafeMutableBufferPointer { y in
                    try interpreter.forward(layer: pair.layer, module: pair.module, x: x, rows: n, y: y)
                }
            }
            writer.add(entry.name, floats: y, shape: [n, pair.outFeatures])
            rows += n
        }
        try writer.write(to: output)
        return "eval: \(inputs.tensors.count) pairs, \(rows) rows → \(output)"
    }

    /// `ΔW` `[out, in]` of every pair, scale included.
    public static func materialize(specPath: String, adapterPath: String, output: String, threads: Int) throws -> String {
        let (checked, plan) = try SpecLoader.loadPlanned(path: specPath)
        let interpreter = try AdapterFiles.load(adapterPath, checked: checked, plan: plan, threads: threads)
        var writer = SafetensorsWriter()
        for pair in plan.pairs {
            writer.add(PairKey.key(layer: pair.layer, module: pair.module), floats: try delta(pair, interpreter), shape: [pair.outFeatures, pair.inFeatures])
        }
        try writer.write(to: output)
        return "materialize: \(plan.pairs.count) pairs → \(output)"
    }

    static func delta(_ pair: PairPlan, _ interpreter: PlanInterpreter) throws -> [Float] {
        var delta = [Float](repeating: 0, count: pair.outFeatures * pair.inFeatures)
        try delta.withUnsafeMutableBufferPointer {
            try interpreter.materialize(layer: pair.layer, module: pair.module, into: $0)
        }
        return delta
    }
}
