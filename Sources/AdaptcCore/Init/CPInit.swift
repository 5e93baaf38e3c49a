import AdaptRuntime
import Foundation

/// `init: {method: cp-als}` (DESIGN §3): the CP group's factors from `CPALS`
/// on its stacked weights in `order`: the HOSVD start (padded from the seed
/// where the rank passes a mode's size), columns normalised each sweep,
/// stopping when the fit changes by less than `tolerance` (default 1e-6) or
/// after `iterations` (default 100).
///
/// The plan stores `GROUP.factor.MODE` [n_k, R] with ΔW = s·Σ_c ∏_k F_k[·, c]
/// (StructureNetwork) and no λ: the weights are folded back into the columns,
/// balanced (`balancedFactors`, scale 1 since the tensor is already W/s), so
/// no one factor carries the scale. The stacked tensor is held once, float32.
struct CPInitialiser: TensorInitialiser {
    static let defaultIterations = 100
    static let defaultTolerance = 1e-6

    func rank(_ group: ResolvedGroup) -> Int {
        guard case .cp(let rank) = group.ranks else { preconditionFailure("cp-als on a non-cp group") }
        return rank
    }

    func memoryNeed(_ problem: TensorInitProblem) -> (bytes: Int, purpose: String) {
        let weights = problem.weights, rank = rank(problem.group)
        // The stacked tensor (float32), one weight read, the kept product with
        // the largest mode and the one with the next (count·R/n float64 each).
        let sorted = weights.shape.sorted(by: >)
        let kept = weights.count / max(sorted.first ?? 1, 1) * rank
        let next = weights.count / max(sorted.count > 1 ? sorted[1] : 1, 1) * rank
        let largestMode = sorted.first ?? 1
        let bytes = 4 * weights.count + 4 * weights.weightCount + 8 * (kept + 2 * next) + 24 * largestMode * largestMode
        return (bytes, "the stacked tensor of group '\(problem.group.name)' (cp-als)")
    }

    func initialise(_ problem: TensorInitProblem) throws -> TensorInitOutcome {
        let weights = problem.weights, group = problem.group, settings = problem.settings
        // Under loftq, `iterations` counts LoftQ's alternations, not ALS sweeps.
        let own = settings.method == .cpALS
        let cap = own ? (settings.iterations ?? Self.defaultIterations) : Self.defaultIterations
        let tolerance = own ? (settings.tolerance ?? Self.defaultTolerance) : Self.defaultTolerance
        let tensor = try weights.denseFloats(for: "cp-als")
        let result = try tensor.withUnsafeBufferPointer { x in
            try CPALS.decompose(x, shape: weights.shape,
                                settings: CPALS.Settings(rank: rank(group), iterations: cap, tolerance: tolerance,
                                                         seed: problem.seed),
                                threads: problem.threads)
        }
        for (k, factor) in result.balancedFactors(scale: 1).enumerated() {
            problem.write(factor, to: TensorKey(group: group.name, role: .factor(mode: "\(weights.modes[k].name)")))
        }
        let stopped = result.sweeps < cap ? String(format: "fit changed by < %g", tolerance) : "iteration cap"
        let details = ["rank \(result.rank)",
                       "\(result.sweeps) sweep\(result.sweeps == 1 ? "" : "s") (\(stopped))",
                       String(format: "fit %.6f", result.fit)]
        return TensorInitOutcome(method: "CP-ALS from the HOSVD start", details: details)
    }
}
