import AdaptRuntime

/// `init: {method: loftq}` for lora groups (DESIGN §3): each pair's W split into
/// a quantised base Q and factors fitted to W − Q (`LoftQ`), pairs in parallel
/// (TBB). The Q's stay as codes and scales (a byte per weight) until
/// `--residual` writes them out.
extension InitStage {
    /// The group's quantiser: the spec's settings with their defaults.
    static func quantiser(_ settings: InitSettings) -> Quantiser {
        let (bits, group, kind) = (settings.quantiser ?? QuantiserSettings()).resolved
        return Quantiser(bits: bits, group: group, kind: kind == .nf4 ? .nf4 : .symmetric)
    }

    static let defaultLoftQIterations = 5

    static func loftq(_ pairs: [PairPlan], group: String, settings: InitSettings, seed: UInt64,
                      base: BaseCheckpoint, template: WeightKeyTemplate, storage: AdapterStorage,
                      plan: Plan, threads: Int, report: inout GroupReport) throws {
        let quantiser = quantiser(settings)
        let iterations = settings.iterations ?? defaultLoftQIterations
        // Every weight is located and its shape checked before any work starts.
        _ = try base.targets(pairs, template: template)
        var outcomes = [Result<LoftQ.Result, Error>?](repeating: nil, count: pairs.count)
        outcomes.withUnsafeMutableBufferPointer { outcomes in
            Parallel.forEach(pairs.count, threads: threads) { range in
                for index in range {
                    let pair = pairs[index]
                    outcomes[index] = Result {
                        let weight = try base.weight(template.key(pair), for: pair, template: template)
                        let result: LoftQ.Result
                        do {
                            result = try weight.withUnsafeBufferPointer {
                                try LoftQ.initialise($0, out: pair.outFeatures, in: pair.inFeatures, rank: pair.rank,
                                                     scale: pair.scale, quantiser: quantiser, iterations: iterations,
                                                     decomposition: decomposition(settings, pair: pair, seed: seed))
                            }
                        } catch let bad as Quantiser.NonFiniteValue {
                            throw UserError("group '\(group)', pair \(pair.key): W − s·B·A has \(bad)")
                        }
                        store(a: result.a, b: result.b, of: pair, group: group, into: storage, plan: plan)
                        return result
                    }
                }
            }
        }
        var total = 0.0, quantisedAlone = 0.0
        var missed = [Double](repeating: 0, count: iterations)
        for (pair, outcome) in zip(pairs, outcomes) {
            let result = try outcome!.get()
            total += result.weightEnergy
            quantisedAlone += result.quantisationError * result.quantisationError * result.weightEnergy
            for t in 0..<iterations { missed[t] += result.relativeErrors[t] * result.relativeErrors[t] * result.weightEnergy }
            let last = result.relativeErrors[iterations - 1]
            if report.worstRelativeError == nil || last > report.worstRelativeError!.error {
                report.worstRelativeError = (last, pair.key)
            }
            report.quantisedBases[template.key(pair)] = (quantiser, result.quantised)
        }
        let relative = { (x: Double) in total == 0 ? 0 : (x / total).squareRoot() }
        let kind = quantiser.kind == .nf4 ? "nf4" : "int\(quantiser.bits) symmetric"
        report.loftqSummary = "\(kind), groups of \(quantiser.group); ‖W − (Q + s·B·A)‖/‖W‖ by iteration "
            + missed.map { String(format: "%.6f", relative($0)) }.joined(separator: ", ")
            + String(format: " (Q alone %.6f; worst pair %@ %.6f)", relative(quantisedAlone),
                     report.worstRelativeError?.pair ?? "-", report.worstRelativeError?.error ?? 0)
    }
}
