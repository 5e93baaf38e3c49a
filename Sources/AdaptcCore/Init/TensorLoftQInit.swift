import AdaptRuntime

/// `init: {method: loftq}` for tensor groups (DESIGN §3; Li et al. 2023):
/// LoftQ with the group's own decomposition in place of the truncated SVD,
/// on the stacked residual. For t = 1…T:
///
///     Q_t[l,m] = dequantise(quantise(W[l,m] − ΔW_{t−1}[l,m]))      (ΔW_0 = 0)
///     cores_t  = the structure's method (tt-svd, …) on the stacked (W − Q_t)/s
///
/// As for lora, the Q kept is Q_T, the one the last cores were fitted to: it
/// is what `--residual` writes. Each Q stays as codes and scales; ΔW is read
/// back through the plan (materialize), so the weights stream one at a time.
extension InitStage {
    static func tensorLoftQ(_ problem: TensorInitProblem, initialiser: TensorInitialiser, plan: Plan,
                            report: inout GroupReport) throws -> TensorInitOutcome {
        let quantiser = quantiser(problem.settings)
        let iterations = problem.settings.iterations ?? defaultLoftQIterations
        let weights = problem.weights
        let (rows, columns) = (weights.outFeatures, weights.inFeatures)
        var bases: [Quantiser.Quantised] = []
        var outcome = TensorInitOutcome(method: "")
        var errors: [Double] = []
        var total = 0.0, quantisedAlone = 0.0
        for t in 0..<iterations {
            // Q_t from W − ΔW_{t−1}, pair by pair.
            let interpreter = t == 0 ? nil : preparedInterpreter(plan, problem.storage, threads: problem.threads)
            var delta = [Float](repeating: 0, count: weights.weightCount)
            bases = []
            for (p, pair) in weights.pairs.enumerated() {
                var target = try weights.rawWeight(p)
                if let interpreter {
                    try delta.withUnsafeMutableBufferPointer {
                        try interpreter.materialize(layer: pair.layer, module: pair.module, into: $0)
                    }
                    for k in target.indices { target[k] -= delta[k] }
                }
                do {
                    bases.append(try target.withUnsafeBufferPointer {
                        try quantiser.quantise($0, rows: rows, columns: columns, threads: problem.threads)
                    })
                } catch let bad as Quantiser.NonFiniteValue {
                    throw UserError("group '\(problem.group.name)', pair \(pair.key): W − ΔW has \(bad)")
                }
            }
            let step = TensorInitProblem(group: problem.group, weights: weights.removing(bases, quantiser: quantiser),
                                         settings: problem.settings, seed: problem.seed, threads: problem.threads,
                                         tensors: problem.tensors, storage: problem.storage)
            outcome = try initialiser.initialise(step)
            // ‖W − (Q_t + ΔW_t)‖ over the group, on the stored cores.
            let measured = preparedInterpreter(plan, problem.storage, threads: problem.threads)
            var missed = 0.0
            total = 0
            for (p, pair) in weights.pairs.enumerated() {
                let w = try weights.rawWeight(p)
                let q = quantiser.dequantise(bases[p], threads: problem.threads)
                try delta.withUnsafeMutableBufferPointer {
                    try measured.materialize(layer: pair.layer, module: pair.module, into: $0)
                }
                for k in w.indices {
                    let x = Double(w[k]), r = x - Double(q[k])
                    total += x * x
                    missed += (r - Double(delta[k])) * (r - Double(delta[k]))
                    if t == 0 { quantisedAlone += r * r }
                }
            }
            errors.append(missed)
        }
        for (p, pair) in weights.pairs.enumerated() {
            report.quantisedBases[weights.template.key(pair)] = (quantiser, bases[p])
        }
        let relative = { (x: Double) in total == 0 ? 0 : (x / total).squareRoot() }
        report.worstRelativeError = (relative(errors.last ?? 0), "-")
        let kind = quantiser.kind == .nf4 ? "nf4" : "int\(quantiser.bits) symmetric"
        report.loftqSummary = "LoftQ, \(kind), groups of \(quantiser.group); ‖W − (Q + ΔW)‖/‖W‖ by iteration "
            + errors.map { String(format: "%.6f", relative($0)) }.joined(separator: ", ")
            + String(format: " (Q alone %.6f)", relative(quantisedAlone))
        return outcome
    }

    /// An interpreter holding the storage's current parameters, prepared.
    static func preparedInterpreter(_ plan: Plan, _ storage: AdapterStorage, threads: Int) -> PlanInterpreter {
        let interpreter = PlanInterpreter(plan: plan, threads: threads)
        _ = interpreter.storage.parameters.update(fromContentsOf: storage.parameters)
        interpreter.prepare()
        return interpreter
    }
}
