import AdaptRuntime
import Foundation

/// `init: {method: tt-svd}` (DESIGN §3): the group's cores from `TTSVD` on
/// its stacked weights, in its `order`.
///
/// The sweep starts at an end of `order` whose mode lies inside one weight
/// (an out or in factor): that end's unfolding has every weight in its own
/// columns, so its Gram matrix sums over the weights read one at a time and
/// the stacked tensor is never held — left to right when the first mode is
/// such a mode, else right to left (the reversed train, turned back). When
/// both ends are `layer`/`module` (their unfoldings mix weights), the stacked
/// tensor is read whole, once, and the line says so.
struct TTSVDInitialiser: TensorInitialiser {
    enum Sweep: String {
        case leftToRight = "left to right"
        case rightToLeft = "right to left"
        /// Left to right, the stacked tensor held: neither end streams.
        case whole = "left to right over the whole tensor"
    }

    func sweep(_ weights: StackedWeights) -> Sweep {
        if weights.strideInsideWeight(ofModeAt: 0) != nil { return .leftToRight }
        if weights.strideInsideWeight(ofModeAt: weights.modes.count - 1) != nil { return .rightToLeft }
        return .whole
    }

    /// Caps per bond: the plan's (already clipped to min(∏ left, ∏ right)).
    func caps(_ group: ResolvedGroup) -> [Int] {
        guard case .tensorTrain(let bonds) = group.ranks else { preconditionFailure("tt-svd on a non tensor-train group") }
        return bonds
    }

    func memoryNeed(_ problem: TensorInitProblem) -> (bytes: Int, purpose: String) {
        let weights = problem.weights
        let caps = caps(problem.group)
        switch sweep(weights) {
        case .whole:
            // The stacked tensor in float32 (the float32 TT-SVD reads it in place).
            return (4 * weights.count + 4 * weights.weightCount,
                    "the stacked tensor of group '\(problem.group.name)' (neither end of its order lies inside one weight)")
        case .leftToRight, .rightToLeft:
            let end = sweep(weights) == .leftToRight ? 0 : weights.shape.count - 1
            let rows = weights.shape[end], rank = caps.isEmpty ? 1 : (end == 0 ? caps[0] : caps[caps.count - 1])
            // One weight read (float32), as float64 slice with column indices,
            // the Gram matrix with its eigenvectors, and the remainder.
            let bytes = 4 * weights.weightCount + 16 * weights.weightCount + 8 * weights.weightCount / rows
                + 24 * rows * rows + 16 * rank * (weights.count / rows)
            return (bytes, "TT-SVD of group '\(problem.group.name)' (one weight and the projected remainder)")
        }
    }

    /// Weights read so far, on stderr when it is a terminal (a pass for the
    /// Gram matrix, one for the projection), so long inits show they move.
    static func progress(_ group: String) -> ((Int, Int) -> Void)? {
        guard isatty(STDERR_FILENO) != 0 else { return nil }
        return { done, total in
            FileHandle.standardError.write(Data("\rtt-svd \(group): \(done)/\(total) weight reads".utf8))
        }
    }

    func initialise(_ problem: TensorInitProblem) throws -> TensorInitOutcome {
        let weights = problem.weights, group = problem.group
        let caps = caps(group)
        let randomized = TruncatedSVD.Randomized(oversampling: problem.settings.oversampling ?? TruncatedSVD.Randomized().oversampling,
                                                 powerIterations: problem.settings.powerIterations ?? TruncatedSVD.Randomized().powerIterations,
                                                 seed: problem.seed)
        let sweep = sweep(weights)
        let progress = Self.progress(group.name)
        defer { if progress != nil { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) } }
        var train: TTSVD
        switch sweep {
        case .leftToRight:
            train = try TTSVD.decompose(WeightUnfolding(weights), modeSizes: weights.shape, caps: caps,
                                        tolerance: problem.settings.tolerance, randomized: randomized,
                                        threads: problem.threads, progress: progress)
        case .rightToLeft:
            let reversed = weights.laidOut(weights.modes.reversed())
            train = try TTSVD.decompose(WeightUnfolding(reversed), modeSizes: reversed.shape, caps: caps.reversed(),
                                        tolerance: problem.settings.tolerance, randomized: randomized,
                                        threads: problem.threads, progress: progress).reversed()
        case .whole:
            let tensor = try weights.denseFloats(for: "tt-svd")
            train = try tensor.withUnsafeBufferPointer {
                try TTSVD.decompose($0, modeSizes: weights.shape, caps: caps, tolerance: problem.settings.tolerance,
                                    randomized: randomized, threads: problem.threads)
            }
        }
        // Cores at the plan's shapes: a bond the tolerance made smaller is zero-padded.
        let planRanks = [1] + caps + [1], ranks = train.ranks
        for k in 0..<weights.shape.count {
            let key = TensorKey(group: group.name, role: .core(k))
            let (a, n, b) = (ranks[k], weights.shape[k], ranks[k + 1])
            let (pa, pb) = (planRanks[k], planRanks[k + 1])
            var padded = [Double](repeating: 0, count: pa * n * pb)
            for i in 0..<a { for j in 0..<n { for l in 0..<b { padded[(i * n + j) * pb + l] = train.cores[k][(i * n + j) * b + l] } } }
            problem.write(padded, to: key)
        }
        let methods = train.bonds.map(\.method.rawValue).reduce(into: [String]()) { if !$0.contains($1) { $0.append($1) } }
        let bonds = train.bonds.enumerated().map { k, bond in
            "r\(k + 1) \(bond.rank)" + (bond.hitCap ? " (cap)" : " of \(bond.cap)")
        }
        var details = ["bonds " + bonds.joined(separator: ", ")]
        if let epsilon = problem.settings.tolerance, !train.overCap.isEmpty {
            details.append(String(format: "tolerance %g not reached: ", epsilon)
                           + train.overCap.map { "r\($0 + 1)" }.joined(separator: ", ")
                           + " at the spec's rank discard more than ε‖W‖/√(d−1)")
        }
        if sweep == .whole { details.append("neither end of the order lies inside one weight, so the stacked tensor was read whole") }
        return TensorInitOutcome(method: "TT-SVD (\(methods.joined(separator: ", "))), \(sweep.rawValue)", details: details,
                                 bound: train.bound == nil ? nil : problem.settings.tolerance)
    }
}

/// The first unfolding `[n_1, rest]` of the stacked weights when mode 1 lies
/// inside one weight: weight p is one slice. With σ the mode's stride inside
/// the row-major weight, element e = hi·(n_1·σ) + j·σ + lo is row j, local
/// column hi·σ + lo, and its unfolding column is its offset in the stacked
/// tensor less j·stride(mode 1).
struct WeightUnfolding: UnfoldingSlices {
    let weights: StackedWeights
    let sigma: Int

    init(_ weights: StackedWeights) {
        guard let sigma = weights.strideInsideWeight(ofModeAt: 0) else { preconditionFailure("mode 1 is not inside a weight") }
        self.weights = weights
        self.sigma = sigma
    }

    var rows: Int { weights.shape[0] }
    var columns: Int { weights.count / rows }
    var sliceCount: Int { weights.pairs.count }

    func slice(_ index: Int) throws -> (matrix: [Double], columnIndex: [Int]) {
        let w = try weights.weight(index)
        let n1 = rows, width = w.count / n1, inFeatures = weights.inFeatures
        let start = weights.pairOffset[index]
        var matrix = [Double](repeating: 0, count: w.count)
        var columnIndex = [Int](repeating: 0, count: width)
        // e runs through the weight in storage order: hi, then j, then lo.
        let high = w.count / (sigma * n1)
        w.withUnsafeBufferPointer { w in
            matrix.withUnsafeMutableBufferPointer { matrix in
                var e = 0
                for hi in 0..<high {
                    for j in 0..<n1 {
                        let row = j * width + hi * sigma
                        for lo in 0..<sigma { matrix[row + lo] = Double(w[e + lo]) }
                        e += sigma
                    }
                }
            }
        }
        // The unfolding column of local column hi·σ + lo is the offset of its j = 0 element.
        for hi in 0..<high {
            for lo in 0..<sigma {
                let e = hi * sigma * n1 + lo
                columnIndex[hi * sigma + lo] = start + weights.outOffset[e / inFeatures] + weights.inOffset[e % inFeatures]
            }
        }
        return (matrix, columnIndex)
    }
}
