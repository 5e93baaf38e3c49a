/// The output energy of a tensor train on the calibration rows (DESIGN §4),
/// contracted core by core so neither the dense tensor nor the Gram `Σ xᵀx`
/// is ever formed: `E_{l,m}(T) = Σ_rows ‖x·T[l,m]ᵀ‖²`. See `TTWeightedMetric`
/// for how (the in cores are contracted with the rows, everything else is
/// bond-sized environments).
extension TTCalibration {
    /// Per-pair output energy `Σ_rows ‖x·T[l,m]ᵀ‖²` of the train (its modes
    /// `modes` in train order), at index `l·modules + m`; equals
    /// `pairEnergies(train.dense(), modes:)` up to round-off.
    public func pairEnergies(_ train: TensorTrain, modes: [TTMode]) -> [Double] {
        let metric = TTWeightedMetric(calibration: self, modes: modes, threads: 1)
        let projection = metric.project(train)
        return metric.pairInnerProducts(train, projection, train, projection)
    }
}

/// The digits of a segment core's mode index (row-major over the segment's
/// modes): its in index (by factor order, over every in mode) and the index
/// of the rest (row-major over the segment's other modes).
struct SegmentIndex {
    let inIndex: [Int]
    let otherIndex: [Int]
    let otherCount: Int
    var count: Int { inIndex.count }

    init(modes: [TTMode], sizes: [Int], segment: Range<Int>) {
        let members = Array(segment)
        let count = members.reduce(1) { $0 * sizes[$1] }
        let inWeight = members.map { k in
            modes[k].kind == .in ? modes.filter { $0.kind == .in && $0.factor > modes[k].factor }.reduce(1) { $0 * $1.size } : 0
        }
        var otherWeight = [Int](repeating: 0, count: members.count), w = 1
        for j in members.indices.reversed() where modes[members[j]].kind != .in {
            otherWeight[j] = w
            w *= sizes[members[j]]
        }
        otherCount = w
        var inIndex = [Int](repeating: 0, count: count), otherIndex = [Int](repeating: 0, count: count)
        for p in 0..<count {
            var rest = p
            for j in members.indices.reversed() {
                let digit = rest % sizes[members[j]]
                rest /= sizes[members[j]]
                inIndex[p] += digit * inWeight[j]
                otherIndex[p] += digit * otherWeight[j]
            }
        }
        self.inIndex = inIndex
        self.otherIndex = otherIndex
    }
}

extension TensorTrain {
    /// `self − c·other` as a train of ranks `r_k + r'_k` (block-diagonal inner
    /// cores, the first concatenated along its right bond, the last along its
    /// left), so the loss of a rounding can be measured without the dense tensor.
    public func minus(_ other: TensorTrain, times c: Double = 1) -> TensorTrain {
        precondition(sizes == other.sizes, "TensorTrain: the trains' modes differ")
        let n = count
        if n == 1 { return TensorTrain(cores: [zip(cores[0], other.cores[0]).map { $0 - c * $1 }], sizes: sizes, ranks: ranks) }
        var newRanks = zip(ranks, other.ranks).map { $0 + $1 }
        newRanks[0] = 1
        newRanks[n] = 1
        var newCores: [[Double]] = []
        for k in 0..<n {
            let (a0, a1, b0, b1) = (ranks[k], ranks[k + 1], other.ranks[k], other.ranks[k + 1])
            let (r0, r1, size) = (newRanks[k], newRanks[k + 1], sizes[k])
            var core = [Double](repeating: 0, count: r0 * size * r1)
            // Block (0, 0) is self's core; other's goes at row offset a0 (not in the first core)
            // and column offset a1 (not in the last core); the last core carries −c.
            let rowOffset = k == 0 ? 0 : a0, columnOffset = k == n - 1 ? 0 : a1
            let factor = k == n - 1 ? -c : 1
            for a in 0..<a0 { for j in 0..<size { for b in 0..<a1 { core[(a * size + j) * r1 + b] = cores[k][(a * size + j) * a1 + b] } } }
            for a in 0..<b0 {
                for j in 0..<size {
                    for b in 0..<b1 { core[((a + rowOffset) * size + j) * r1 + b + columnOffset] += factor * other.cores[k][(a * size + j) * b1 + b] }
                }
            }
            newCores.append(core)
        }
        return TensorTrain(cores: newCores, sizes: sizes, ranks: newRanks)
    }
}
