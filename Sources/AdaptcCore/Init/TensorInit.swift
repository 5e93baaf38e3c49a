import AdaptRuntime
import Foundation

/// The principal tensor of a tensor-train, CP or Tucker group (DESIGN §3):
/// the group's stored tensors decomposed from its stacked base weights
/// (`StackedWeights`), one `TensorInitialiser` per method. The stage around
/// them is shared: it finds the weights, hands them over, measures what the
/// stored float32 tensors give back (materialize against W, pair by pair),
/// zeroes the tensor of `RandomInit.zeroTensorKey` for `residual: false`,
/// and writes the report line.
///
/// Each method (tt-svd, hosvd, hooi, cp-als) is a type conforming to this
/// protocol, returned by `InitStage.tensorInitialiser`. What it has to work with:
/// `problem.weights.dense(for:)` (the stacked tensor in `order`, float64);
/// for any mode lying inside one weight (an out or in factor), its unfolding
/// streamed weight by weight: `WeightUnfolding(weights.laidOut(modes with that
/// mode first))`, whose slices sum to the mode's Gram matrix
/// (`Float64LinearAlgebra.accumulateRowGram`); `problem.write` for each stored
/// tensor at the plan's shape; `memoryNeed` says what it will hold, checked
/// against ADAPTC_MEMORY_LIMIT before anything is read. `loftq` on its
/// structure then comes for free (`ownTensorMethod`).
protocol TensorInitialiser {
    /// The bytes the method will hold at its peak and what for, checked
    /// against the memory limit before any weight is read.
    func memoryNeed(_ problem: TensorInitProblem) -> (bytes: Int, purpose: String)

    /// Writes every stored tensor of the group (`problem.write`) from
    /// `problem.weights`, at the plan's shapes, and says what it did.
    func initialise(_ problem: TensorInitProblem) throws -> TensorInitOutcome
}

/// What an initialiser works from.
struct TensorInitProblem {
    let group: ResolvedGroup
    /// The stacked weights `T = W/s` with the group's modes in `order`.
    let weights: StackedWeights
    let settings: InitSettings
    let seed: UInt64
    let threads: Int
    /// The group's stored tensors as the plan lays them out.
    let tensors: [ParameterTensor]
    let storage: AdapterStorage

    /// The group's modes in `order` (size-1 modes dropped).
    var modes: [ResolvedMode] { group.modes }

    func tensor(_ key: TensorKey) -> ParameterTensor {
        guard let tensor = tensors.first(where: { $0.name == key }) else { preconditionFailure("plan has no \(key)") }
        return tensor
    }

    /// `values` (row-major at the plan's shape) into the tensor `key`.
    func write(_ values: [Double], to key: TensorKey) {
        let tensor = tensor(key)
        precondition(values.count == tensor.count, "\(key): \(values.count) values for shape \(tensor.shape)")
        let target = storage.parameters.baseAddress! + tensor.offset
        for k in 0..<values.count { target[k] = Float(values[k]) }
    }
}

/// What an initialiser reports beyond the figures the stage measures.
struct TensorInitOutcome {
    /// The method in words, e.g. `TT-SVD (Gram/eigh), left to right`.
    var method: String
    /// Further facts for the line (bond ranks, the fit, sweeps).
    var details: [String] = []
    /// The guaranteed bound on ‖W − ΔW‖/‖W‖, when the method has one.
    var bound: Double?
}

/// `adaptc init` for tensor-train, CP and Tucker groups: random cores and
/// factors with one tensor kept at zero (`RandomInit`), or a decomposition of
/// the stacked base weights (`InitStage.tensorInit`).
enum TensorGroupInit: GroupInitialiser {
    static func fillRandom(_ group: ResolvedGroup, tensors: [ParameterTensor], method: InitMethod, seed: UInt64,
                           into parameters: UnsafeMutablePointer<Float>) {
        let zeroKey = RandomInit.zeroTensorKey(group)
        for tensor in tensors where tensor.name != zeroKey {
            RandomInit.fillCore(tensor, method: method, seed: seed, into: parameters + tensor.offset)
        }
    }

    static func decompose(_ group: ResolvedGroup, settings: InitSettings, seed: UInt64, base: BaseCheckpoint,
                          template: WeightKeyTemplate, storage: AdapterStorage, plan: Plan, threads: Int,
                          report: inout InitStage.GroupReport) throws {
        try InitStage.tensorInit(group, settings: settings, seed: seed, base: base, template: template, storage: storage,
                                 plan: plan, threads: threads, report: &report)
    }
}

extension InitStage {
    /// The tensor init methods (DESIGN §3) and who does each.
    static let tensorMethods: [InitMethod] = [.ttSVD, .hosvd, .hooi, .cpALS]

    /// The structure's own decomposition: what `loftq` alternates with the quantiser.
    static func ownTensorMethod(_ structure: Structure) -> InitMethod {
        switch structure {
        case .tensorTrain: return .ttSVD
        case .cp: return .cpALS
        case .tucker: return .hosvd
        case .lora: preconditionFailure("lora groups have no tensor method")
        }
    }

    static func tensorInitialiser(_ method: InitMethod) -> TensorInitialiser {
        switch method {
        case .ttSVD: return TTSVDInitialiser()
        case .hosvd: return TuckerInitialiser(iterates: false)
        case .hooi: return TuckerInitialiser(iterates: true)
        case .cpALS: return CPInitialiser()
        default: preconditionFailure("'\(method.rawValue)' is not a tensor init method")
        }
    }

    /// One tensor group: decompose, measure, zero for `residual: false`.
    static func tensorInit(_ group: ResolvedGroup, settings: InitSettings, seed: UInt64, base: BaseCheckpoint,
                           template: WeightKeyTemplate, storage: AdapterStorage, plan: Plan, threads: Int,
                           report: inout GroupReport) throws {
        guard let pairs = plan.groups.first(where: { $0.name == group.name })?.pairs else { return }
        let started = DispatchTime.now().uptimeNanoseconds
        let weights = StackedWeights(group: group, pairs: pairs, base: base, template: template)
        // Every weight is located and its shape checked before any is read.
        try weights.checkPresent()
        let problem = TensorInitProblem(group: group, weights: weights, settings: settings, seed: seed, threads: threads,
                                        tensors: plan.parameters(of: group.name),
                                        storage: storage)
        let loftq = settings.method == .loftq
        let initialiser = tensorInitialiser(loftq ? ownTensorMethod(group.structure) : settings.method)
        var need = initialiser.memoryNeed(problem)
        if loftq {
            // Q stays as codes (a byte a weight) and group scales for every pair.
            need.bytes += weights.count + 4 * weights.count / quantiser(settings).group
            need.purpose += " and LoftQ's quantised bases"
        }
        let limit = Planner.memoryLimit
        if need.bytes > limit {
            throw UserError("group '\(group.name)': init method '\(settings.method.rawValue)' needs "
                            + "\(ByteCount.text(need.bytes)) for \(need.purpose) (the stacked tensor is "
                            + "\(ByteCount.text(4 * weights.count))), over the memory limit of \(ByteCount.text(limit)) "
                            + "(set ADAPTC_MEMORY_LIMIT in bytes to change it)")
        }
        try MemoryBudget.require(bytes: need.bytes, for: need.purpose)
        if loftq {
            let outcome = try tensorLoftQ(problem, initialiser: initialiser, plan: plan, report: &report)
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
            report.tensorSummary = ([outcome.method] + outcome.details + [report.loftqSummary ?? "", String(format: "%.3f s", seconds)])
                .joined(separator: "; ")
            report.loftqSummary = nil
            return
        }
        let outcome = try initialiser.initialise(problem)
        let figures = try measure(weights, plan: plan, storage: storage, threads: threads)
        let keepsResidual = settings.residual ?? true
        if !keepsResidual {
            let zeroed = problem.tensor(RandomInit.zeroTensorKey(group))
            (storage.parameters.baseAddress! + zeroed.offset).update(repeating: 0, count: zeroed.count)
        }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
        report.capturedEnergy = figures.weight == 0 ? 1 : figures.delta / figures.weight
        report.worstRelativeError = (figures.weight == 0 ? 0 : (figures.error / figures.weight).squareRoot(), "-")
        var summary = [outcome.method] + outcome.details
        summary.append(String(format: "captured energy ‖ΔW‖²/‖W‖² %.6f, relative error ‖W − ΔW‖/‖W‖ %.6f",
                              report.capturedEnergy!, report.worstRelativeError!.error))
        if let bound = outcome.bound { summary.append(String(format: "bound %.6f", bound)) }
        if !keepsResidual { summary.append("residual: false, so \(RandomInit.zeroTensorKey(group)) is zeroed (ΔW = 0)") }
        summary.append(String(format: "%.3f s", seconds))
        report.tensorSummary = summary.joined(separator: "; ")
    }

    /// ‖W‖², ‖ΔW‖² and ‖W − ΔW‖² over the group, from what the storage holds
    /// now (materialized pair by pair, float64 sums), so the line reports the
    /// float32 tensors a user gets, not the decomposition's own arithmetic.
    static func measure(_ weights: StackedWeights, plan: Plan, storage: AdapterStorage,
                        threads: Int) throws -> (weight: Double, delta: Double, error: Double) {
        let interpreter = preparedInterpreter(plan, storage, threads: threads)
        var delta = [Float](repeating: 0, count: weights.weightCount)
        var sums = (weight: 0.0, delta: 0.0, error: 0.0)
        for (p, pair) in weights.pairs.enumerated() {
            let w = try weights.rawWeight(p)
            try delta.withUnsafeMutableBufferPointer {
                try interpreter.materialize(layer: pair.layer, module: pair.module, into: $0)
            }
            for k in w.indices {
                let (x, y) = (Double(w[k]), Double(delta[k]))
                sums.weight += x * x
                sums.delta += y * y
                sums.error += (x - y) * (x - y)
            }
        }
        return sums
    }
}
