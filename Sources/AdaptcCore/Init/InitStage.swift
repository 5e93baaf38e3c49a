import AdaptRuntime
import Foundation

/// `adaptc init`'s work (DESIGN §3): fills an adapter's parameters group by
/// group — random for zero/gaussian, from the base weights for
/// pissa/milora/olora, pairs in parallel (TBB) — and says per group what it did.
public enum InitStage {
    public struct GroupReport: Sendable {
        public var name: String
        public var method: InitMethod
        public var seed: UInt64
        public var tensors: Int
        public var parameters: Int
        /// pissa/milora/olora: Σ‖s·B·A‖² / Σ‖W‖² over the group's pairs.
        public var capturedEnergy: Double?
        /// The largest ‖W − s·B·A‖_F / ‖W‖_F of the group, and its pair.
        public var worstRelativeError: (error: Double, pair: String)?
        public var decompositions: [String] = []
        /// loftq: the quantised bases Q by checkpoint key, for `--residual`.
        public var quantisedBases: [String: (quantiser: Quantiser, base: Quantiser.Quantised)] = [:]
        /// loftq: what the line says about the quantiser and the iterations.
        public var loftqSummary: String?
        /// Tensor methods: the method, its ranks, the measured figures, the bound and the time.
        public var tensorSummary: String?

        public var line: String {
            var text = "init \(name): \(method.rawValue), seed \(seed), \(tensors) tensors, \(parameters) parameters"
            if let tensorSummary { return text + "; " + tensorSummary }
            if let capturedEnergy, let worst = worstRelativeError {
                text += String(format: "; %@; captured energy %.6f, relative error of the rank-r part %.6f (worst pair %@)",
                               decompositions.joined(separator: "/"), capturedEnergy, worst.error, worst.pair)
            }
            if let loftqSummary { text += "; " + loftqSummary }
            return text
        }
    }

    public static let principalMethods: [InitMethod] = [.pissa, .milora, .olora]
    /// The methods that read the base weights and change what `--residual` writes.
    public static let baseMethods: [InitMethod] = principalMethods + [.loftq] + tensorMethods

    /// Whether some group reads the base weights (so `--base` applies).
    public static func readsBase(_ checked: CheckedSpec) -> Bool {
        checked.groups.contains { baseMethods.contains($0.group.initialization.method) || $0.group.dora }
    }

    /// Initialises every group into `storage` (laid out as `plan.parameters`).
    /// `base` is needed exactly when a group uses pissa, milora or olora.
    public static func run(_ checked: CheckedSpec, plan: Plan, into storage: AdapterStorage, seed: UInt64?,
                           base: BaseCheckpoint?, threads: Int) throws -> [GroupReport] {
        var reports: [GroupReport] = []
        for group in checked.groups {
            let settings = group.group.initialization
            let seed = seed ?? settings.seed ?? 0
            let tensors = plan.parameters.filter { $0.key.hasPrefix(group.name + ".") }
            var report = GroupReport(name: group.name, method: settings.method, seed: seed, tensors: tensors.count,
                                     parameters: tensors.map(\.count).reduce(0, +))
            switch settings.method {
            case .zero, .gaussian:
                let zeroKey = group.structure == .lora ? nil : RandomInit.zeroTensorKey(group)
                for tensor in tensors {
                    let target = storage.parameters.baseAddress! + tensor.offset
                    if group.structure == .lora {
                        RandomInit.fill(tensor, method: settings.method, seed: seed, into: target)
                    } else if tensor.key != zeroKey {
                        RandomInit.fillCore(tensor, method: settings.method, seed: seed, into: target)
                    }
                }
            case .loftq where group.structure != .lora, .ttSVD, .hosvd, .hooi, .cpALS:
                guard let base else {
                    throw UserError("\(checked.spec.path): group '\(group.name)' uses init method '\(settings.method.rawValue)', which needs --base (the checkpoint whose weights it decomposes)")
                }
                let template = try WeightKeyTemplate(checked, for: "init method '\(settings.method.rawValue)'")
                try tensorInit(group, settings: settings, seed: seed, base: base, template: template, storage: storage,
                               plan: plan, threads: threads, report: &report)
            case .pissa, .milora, .olora, .loftq:
                guard let base else {
                    throw UserError("\(checked.spec.path): group '\(group.name)' uses init method '\(settings.method.rawValue)', which needs --base (the checkpoint whose weights it decomposes)")
                }
                let template = try WeightKeyTemplate(checked, for: "init method '\(settings.method.rawValue)'")
                guard let pairs = plan.groups.first(where: { $0.name == group.name })?.pairs else { continue }
                if settings.method == .loftq {
                    try loftq(pairs, group: group.name, settings: settings, seed: seed, base: base, template: template,
                              storage: storage, plan: plan, threads: threads, report: &report)
                } else {
                    try principal(pairs, group: group.name, settings: settings, seed: seed, base: base, template: template,
                              storage: storage, plan: plan, threads: threads, report: &report)
                }
            case .recycle:
                throw UserError("\(checked.spec.path): group '\(group.name)': init method '\(settings.method.rawValue)' is not supported yet (zero, gaussian, pissa, milora, olora, loftq, tt-svd, hosvd, hooi and cp-als are)")
            }
            if group.group.dora {
                try DoRAInit.magnitudes(group, plan: plan, base: base, specPath: checked.spec.path, checked: checked, into: storage)
            }
            reports.append(report)
        }
        return reports
    }

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

    private static func principal(_ pairs: [PairPlan], group: String, settings: InitSettings, seed: UInt64,
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
        let prefix = "\(group).\(pair.layer).\(pair.module)."
        for (name, values) in [("A", a), ("B", b)] {
            guard let tensor = plan.parameter(prefix + name), tensor.count == values.count else {
                preconditionFailure("plan has no \(prefix + name) of \(values.count) floats")
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
