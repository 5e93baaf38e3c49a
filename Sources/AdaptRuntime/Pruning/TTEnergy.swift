/// The output energy of a tensor train on the calibration rows (DESIGN §4),
/// contracted core by core so the dense tensor is never formed:
/// `E_{l,m}(T) = Σ_rows ‖x·T[l,m]ᵀ‖² = ⟨T[l,m], T[l,m] ×_in G_{l,m}⟩`.
///
/// Per pair (l, m) the layer and module cores are sliced to their (l, m)
/// matrix, so the pair's train runs over the out and in modes only. The Gram
/// acts on the full in index, which may be factorised over several cores, so
/// the cores from the first in mode to the last are multiplied into one
/// segment core `[r, ∏ n, r']` (a single core when `in` is one mode, the usual
/// case); G is applied to that core's in index on one copy of the train, and
/// `⟨T, T'⟩` is the usual left-to-right contraction of the two trains,
/// an `[r, r']` environment per bond. The cost is that of the segment and of
/// two small products per core — never `∏ n`. No square root of G is taken,
/// so a singular G needs nothing special.
extension TTCalibration {
    /// Per-pair output energy `tr(T[l,m]·G_{l,m}·T[l,m]ᵀ)` of the train (its modes
    /// `modes` in train order), at index `l·modules + m`; equals
    /// `pairEnergies(train.dense(), modes:)` up to round-off.
    public func pairEnergies(_ train: TensorTrain, modes: [TTMode]) -> [Double] {
        precondition(modes.count == train.count, "TTCalibration: modes do not match the train")
        let layerMode = modes.firstIndex { $0.kind == .layer }, moduleMode = modes.firstIndex { $0.kind == .module }
        let inModes = modes.indices.filter { modes[$0].kind == .in }
        precondition(!inModes.isEmpty && inModes.reduce(1) { $0 * modes[$1].size } == inFeatures,
                     "TTCalibration: the train's in modes do not multiply to the rows' width")
        let segment = inModes.first!...inModes.last!
        // The sliced sizes: the layer and module modes become size 1.
        var sizes = train.sizes
        if let k = layerMode { sizes[k] = 1 }
        if let k = moduleMode { sizes[k] = 1 }
        let map = SegmentIndex(modes: modes, sizes: sizes, segment: segment)

        var energies = [Double](repeating: 0, count: layers * modules)
        for l in 0..<layers {
            for m in 0..<modules {
                var cores = train.cores
                if let k = layerMode { cores[k] = Self.slice(cores[k], r0: train.ranks[k], n: train.sizes[k], r1: train.ranks[k + 1], at: l) }
                if let k = moduleMode { cores[k] = Self.slice(cores[k], r0: train.ranks[k], n: train.sizes[k], r1: train.ranks[k + 1], at: m) }
                let pairTrain = TensorTrain(cores: cores, sizes: sizes, ranks: train.ranks)
                let r0 = train.ranks[segment.lowerBound], r1 = train.ranks[segment.upperBound + 1]
                let merged = pairTrain.product(segment.lowerBound..<(segment.upperBound + 1))
                let weighted = applyGram(grams[l * modules + m], to: merged, r0: r0, r1: r1, map: map)

                var environment = [1.0], r = 1
                func absorb(_ core: [Double], _ other: [Double], n: Int, s: Int) {
                    let x = DenseLinearAlgebra.multiply(environment, other, m: r, n: n * s, k: r)
                    environment = DenseLinearAlgebra.multiply(core, x, m: s, n: s, k: r * n, transA: true)
                    r = s
                }
                var k = 0
                while k < train.count {
                    if k == segment.lowerBound {
                        absorb(merged, weighted, n: map.count, s: r1)
                        k = segment.upperBound + 1
                    } else {
                        absorb(cores[k], cores[k], n: sizes[k], s: train.ranks[k + 1])
                        k += 1
                    }
                }
                energies[l * modules + m] = environment[0]
            }
        }
        return energies
    }

    /// `core[:, at, :]` of a core `[r0, n, r1]`, as `[r0, 1, r1]`.
    static func slice(_ core: [Double], r0: Int, n: Int, r1: Int, at j: Int) -> [Double] {
        var s: [Double] = []
        s.reserveCapacity(r0 * r1)
        for a in 0..<r0 { s += core[((a * n + j) * r1)..<((a * n + j + 1) * r1)] }
        return s
    }

    /// The segment core `[r0, J, r1]` with G applied to its in index: for each
    /// value of the segment's other (out, sliced) digits, `G·C_o` with C_o `[in, r0·r1]`.
    func applyGram(_ g: [Double], to core: [Double], r0: Int, r1: Int, map: SegmentIndex) -> [Double] {
        let n = inFeatures, bonds = r0 * r1, J = map.count
        var gathered = [[Double]](repeating: [Double](repeating: 0, count: n * bonds), count: map.otherCount)
        for a in 0..<r0 {
            for j in 0..<J {
                let base = (a * J + j) * r1, row = map.inIndex[j] * bonds + a * r1
                for b in 0..<r1 { gathered[map.otherIndex[j]][row + b] = core[base + b] }
            }
        }
        let products = gathered.map { DenseLinearAlgebra.multiply(g, $0, m: n, n: bonds, k: n) }
        var result = [Double](repeating: 0, count: core.count)
        for a in 0..<r0 {
            for j in 0..<J {
                let base = (a * J + j) * r1, row = map.inIndex[j] * bonds + a * r1
                for b in 0..<r1 { result[base + b] = products[map.otherIndex[j]][row + b] }
            }
        }
        return result
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

    init(modes: [TTMode], sizes: [Int], segment: ClosedRange<Int>) {
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
    /// left), so the loss of a rounding is measured without the dense tensor.
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
