import AdaptRuntime
import Foundation

/// `adaptc init` for lora groups (DESIGN §3): `zero`/`gaussian` as PEFT draws
/// them (`RandomInit.fill`), and the methods that read the base weights pair by
/// pair — pissa/milora/olora here, loftq in `LoftQInit.swift`.
enum LoRAGroupInit: GroupInitialiser {
    static func fillRandom(_ group: ResolvedGroup, tensors: [ParameterTensor], method: InitMethod, seed: UInt64,
                           into parameters: UnsafeMutablePointer<Float>) {
        for tensor in tensors { RandomInit.fill(tensor, method: method, seed: seed, into: parameters + tensor.offset) }
    }

    static func decompose(_ group: ResolvedGroup, settings: InitSettings, seed: UInt64, base: BaseCheckpoint,
                          template: WeightKeyTemplate, storage: AdapterStorage, plan: Plan, threads: Int,
                          report: inout InitStage.GroupReport) throws {
        guard let pairs = plan.groups.first(where: { $0.name == group.name })?.pairs else { return }
        if settings.method == .loftq {
            try InitStage.loftq(pairs, group: group.name, settings: settings, seed: seed, base: base, template: template,
                                storage: storage, plan: plan, threads: threads, report: &report)
        } else {
            try InitStage.principal(pairs, group: group.name, settings: settings, seed: seed, base: base, template: template,
                                    storage: storage, plan: plan, threads: threads, report: &report)
        }
    }
}

extension InitStage {
    /// The decomposition a pair gets: the spec's `svd`, else randomized when r
    /// plus oversampling is at most a quarter of min(out, in) — there it costs a
    /// few GEMMs instead of a full SVD — else exact.
    static func decomposition(_ settings: InitSettings, pair: PairPlan, seed: UInt64) -> PrincipalInit.Decomposition {
        let randomized = TruncatedSVD.Randomized(oversampling: settings.oversampling ?? TruncatedSVD.Randomized().oversampling,
                                                 powerIterations: settings.powerIterations ?? TruncatedSVD.Randomized().powerIterations,
                                                 seed: seed)
        switch settings.svd {
        case .exact?: return .exact
        case .randomized?: return .randomized(randomized)
        case nil:
            let small = 4 * (pair.rank + randomized.oversampling) <= min(pair.outFeatures, pair.inFeatures)
            return [.pissa, .loftq].contains(settings.method) && small ? .randomized(randomized) : .exact
        }
    }

    static func principal(_ pairs: [PairPlan], group: String, settings: InitSettings, seed: UInt64,
                                  base: BaseCheckpoint, template: WeightKeyTemplate, storage: AdapterStorage,
                                  plan: Plan, threads: Int, report: inout GroupReport) throws {
        guard let method = PrincipalInit.Method(rawValue: settings.method.rawValue) else { return }
        if method == .milora, settings.svd == .randomized {
            throw UserError("group '\(group)': milora takes the smallest singular triplets, which a randomized SVD does not find; use svd: exact")
        }
        // Read and check every weight before any decomposition starts, so a bad
        // base fails fast; then decompose pairs in parallel, each writing only
        // its own A and B.
        _ = try base.targets(pairs, template: template)
        var outcomes = [Result<(captured: Double, total: Double, error: Double, kind: String), Error>?](repeating: nil, count: pairs.count)
        outcomes.withUnsafeMutableBufferPointer { outcomes in
            Parallel.forEach(pairs.count, threads: threads) { range in
                for index in range {
                    outcomes[index] = Result {
                        try initialise(pairs[index], group: group, method: method, settings: settings, seed: seed,
                                       base: base, template: template, storage: storage, plan: plan)
                    }
                }
            }
        }
        var captured = 0.0, total = 0.0
        var kinds: [String] = []
        for (pair, outcome) in zip(pairs, outcomes) {
            let figures = try outcome!.get()
            captured += figures.captured
            total += figures.total
            if !kinds.contains(figures.kind) { kinds.append(figures.kind) }
            if report.worstRelativeError == nil || figures.error > report.worstRelativeError!.error {
                report.worstRelativeError = (figures.error, pair.key)
            }
        }
        report.capturedEnergy = total == 0 ? 1 : captured / total
        report.decompositions = kinds
    }

    /// A pair's A and B into their places in the storage.
    static func store(a: [Float], b: [Float], of pair: PairPlan, group: String, into storage: AdapterStorage, plan: Plan) {
        let block = TensorKey.Block.layer(pair.layer)
        for (name, values) in [(TensorKey.loraA(group, block, pair.module), a), (.loraB(group, block, pair.module), b)] {
            guard let tensor = plan.parameter(name), tensor.count == values.count else {
                preconditionFailure("plan has no \(name) of \(values.count) floats")
            }
            (storage.parameters.baseAddress! + tensor.offset).update(from: values, count: values.count)
        }
    }

    /// One pair: factors into the storage; returns its energies and the
    /// relative error of W − s·B·A, measured on the float32 residual.
    private static func initialise(_ pair: PairPlan, group: String, method: PrincipalInit.Method, settings: InitSettings,
                                   seed: UInt64, base: BaseCheckpoint, template: WeightKeyTemplate,
                                   storage: AdapterStorage, plan: Plan) throws -> (captured: Double, total: Double, error: Double, kind: String) {
        var weight = try base.weight(template.key(pair), for: pair, template: template)
        let decomposition = decomposition(settings, pair: pair, seed: seed)
        let factors = try weight.withUnsafeBufferPointer {
            try PrincipalInit.factors($0, out: pair.outFeatures, in: pair.inFeatures, rank: pair.rank, scale: pair.scale,
                                      method: method, decomposition: decomposition)
        }
        store(a: factors.a, b: factors.b, of: pair, group: group, into: storage, plan: plan)
        let total = weight.reduce(0.0) { $0 + Double($1) * Double($1) }
        weight.withUnsafeMutableBufferPointer {
            PrincipalInit.subtract(factors, scale: pair.scale, from: $0, out: pair.outFeatures, in: pair.inFeatures, rank: pair.rank)
        }
        let residual = weight.reduce(0.0) { $0 + Double($1) * Double($1) }
        let kind: String
        switch (method, decomposition) {
        case (.olora, _): kind = "QR"
        case (_, .exact): kind = "exact SVD"
        case (_, .randomized(let r)): kind = "randomized SVD (p \(r.oversampling), q \(r.powerIterations))"
        }
        return (factors.capturedEnergy * total, total, total == 0 ? 0 : (residual / total).squareRoot(), kind)
    }
}
