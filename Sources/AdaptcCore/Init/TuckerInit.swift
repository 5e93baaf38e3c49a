import AdaptRuntime
import Foundation

/// `init: {method: hosvd | hooi}` (DESIGN §3): the Tucker group's core and
/// factors from `Tucker.hosvd`/`Tucker.hooi` on its stacked weights in
/// `order`. The plan stores exactly that decomposition: `GROUP.core` row-major
/// over the modes in `order` (r_k, or n_k for a `full` mode) and
/// `GROUP.factor.MODE` [n_k, r_k] (StructureNetwork), so the stored tensors are
/// written as they come. A `full` mode has no factor: the identity is implied.
///
/// Every mode's unfolding mixes weights once the core projection starts, so
/// the stacked tensor is held, once, in float32 (as the base stores it):
/// Tucker reads it in float64 tiles and sums in float64.
struct TuckerInitialiser: TensorInitialiser {
    /// hosvd, or hooi with its sweeps (DESIGN §3: default 5, stopping when the
    /// fit changes by less than 1e-6).
    let iterates: Bool

    static let defaultSweeps = 5
    static let fitTolerance = 1e-6

    func ranks(_ group: ResolvedGroup) -> [Int?] {
        guard case .tucker(let ranks) = group.ranks else { preconditionFailure("hosvd/hooi on a non-tucker group") }
        return ranks
    }

    func memoryNeed(_ problem: TensorInitProblem) -> (bytes: Int, purpose: String) {
        let weights = problem.weights, ranks = ranks(problem.group)
        // The stacked tensor (float32), one weight read, each mode's Gram matrix,
        // and the largest projection (the first mode product: count·r/n float64, twice).
        let shrink = zip(weights.shape, ranks).map { n, r in Double(r ?? n) / Double(n) }.min() ?? 1
        let largestMode = weights.shape.max() ?? 1
        let bytes = 4 * weights.count + 4 * weights.weightCount + 24 * largestMode * largestMode
            + 16 * Int(Double(weights.count) * shrink)
        return (bytes, "the stacked tensor of group '\(problem.group.name)' (\(iterates ? "hooi" : "hosvd"))")
    }

    func initialise(_ problem: TensorInitProblem) throws -> TensorInitOutcome {
        let weights = problem.weights, group = problem.group, ranks = ranks(group)
        let tensor = try weights.denseFloats(for: iterates ? "hooi" : "hosvd")
        let sweeps = problem.settings.method == .hooi ? (problem.settings.sweeps ?? Self.defaultSweeps) : Self.defaultSweeps
        let result = try tensor.withUnsafeBufferPointer { x in
            iterates
                ? try Tucker.hooi(x, shape: weights.shape, ranks: ranks, sweeps: sweeps, tolerance: Self.fitTolerance,
                                  threads: problem.threads)
                : try Tucker.hosvd(x, shape: weights.shape, ranks: ranks, threads: problem.threads)
        }
        problem.write(result.core, to: TensorKey(group: group.name, role: .tuckerCore))
        for (k, mode) in weights.modes.enumerated() {
            guard let factor = result.factors[k] else { continue }
            problem.write(factor, to: TensorKey(group: group.name, role: .factor(mode: "\(mode.name)")))
        }
        let described = zip(weights.modes, ranks).map { mode, rank in "\(mode.name) \(rank.map(String.init) ?? "full")" }
        var details = ["ranks " + described.joined(separator: ", ")]
        if iterates {
            let stopped = result.sweeps < sweeps ? String(format: "fit changed by < %g", Self.fitTolerance) : "sweep cap"
            details.append("\(result.sweeps) HOOI sweep\(result.sweeps == 1 ? "" : "s") (\(stopped)), fit by sweep "
                           + result.fits.map { String(format: "%.6f", $0) }.joined(separator: ", "))
        } else {
            details.append(String(format: "fit %.6f", result.fit))
        }
        return TensorInitOutcome(method: iterates ? "HOOI from the HOSVD (Gram/eigh)" : "HOSVD (Gram/eigh)", details: details)
    }
}
