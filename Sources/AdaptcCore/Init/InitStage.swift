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
            let tensors = plan.parameters(of: group.name)
            var report = GroupReport(name: group.name, method: settings.method, seed: seed, tensors: tensors.count,
                                     parameters: tensors.map(\.count).reduce(0, +))
            let initialiser = group.structure.initialiser
            switch settings.method {
            case .zero, .gaussian:
                initialiser.fillRandom(group, tensors: tensors, method: settings.method, seed: seed,
                                       into: storage.parameters.baseAddress!)
            case .pissa, .milora, .olora, .loftq, .ttSVD, .hosvd, .hooi, .cpALS:
                guard let base else {
                    throw UserError("\(checked.spec.path): group '\(group.name)' uses init method '\(settings.method.rawValue)', which needs --base (the checkpoint whose weights it decomposes)")
                }
                let template = try WeightKeyTemplate(checked, for: "init method '\(settings.method.rawValue)'")
                try initialiser.decompose(group, settings: settings, seed: seed, base: base, template: template,
                                          storage: storage, plan: plan, threads: threads, report: &report)
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
}
