/// The calibration weighting of a tensor-train group (DESIGN §4): the rows
/// `x` `[n, in]` each (layer, module) of the group reads. The output energy of
/// a delta tensor D on the rows is
/// `E(D) = Σ_{l,m} Σ_rows ‖x·ΔW[l,m]ᵀ‖² = Σ_{l,m} tr(ΔW[l,m]·G_{l,m}·ΔW[l,m]ᵀ)`
/// with `G = Σ_rows xᵀx`; the rounding never forms G (`[in, in]`, n·in² to
/// build): it contracts the rows with the train's in cores instead (see
/// `TTWeightedMetric`), n·in·r per contraction.
///
/// Pairs that read one input (the modules of a layer under `model.inputs`)
/// share it, so it is contracted once for all of them.
public struct TTCalibration: Sendable {
    public let layers: Int
    public let modules: Int
    public let inFeatures: Int
    /// The distinct inputs, rows `[rowCounts[i], in]` row-major, as given (float32).
    public let inputs: [[Float]]
    public let rowCounts: [Int]
    /// The input pair `l·modules + m` reads: an index into `inputs`.
    public let inputOfPair: [Int]

    /// `inputs[i]` are rows `[counts[i], in]`; pair `l·modules + m` (the group's
    /// layer and module order) reads `inputs[inputOfPair[l·modules + m]]`.
    /// - Parameters:
    ///   - inputs: the distinct inputs, rows `[n, in]` row-major.
    ///   - counts: each input's row count n.
    ///   - inputOfPair: per pair, the index of the input it reads.
    ///   - layers: the group's layer count.
    ///   - modules: the group's module count.
    ///   - inFeatures: the rows' width.
    public init(inputs: [[Float]], counts: [Int], inputOfPair: [Int], layers: Int, modules: Int, inFeatures: Int) {
        precondition(inputs.count == counts.count && inputOfPair.count == layers * modules
                     && inputOfPair.allSatisfy { inputs.indices.contains($0) }, "TTCalibration: inputs do not match the pairs")
        for (x, n) in zip(inputs, counts) { precondition(x.count == n * inFeatures, "TTCalibration: rows do not match [n, in]") }
        self.layers = layers
        self.modules = modules
        self.inFeatures = inFeatures
        self.inputs = inputs
        self.rowCounts = counts
        self.inputOfPair = inputOfPair
    }

    /// `rows[l·modules + m]` are the rows `[count, in]` of pair (l, m), in the
    /// group's layer and module order. Pairs whose rows are one array (the same
    /// storage) share one input.
    /// - Parameters:
    ///   - rows: per pair, its rows `[n, in]` row-major.
    ///   - counts: per pair, its row count n.
    ///   - layers: the group's layer count.
    ///   - modules: the group's module count.
    ///   - inFeatures: the rows' width.
    public init(rows: [[Float]], counts: [Int], layers: Int, modules: Int, inFeatures: Int) {
        precondition(rows.count == layers * modules && counts.count == rows.count)
        var inputs: [[Float]] = [], inputCounts: [Int] = [], index: [Int] = []
        var seen: [UnsafeRawPointer: Int] = [:]
        for (x, n) in zip(rows, counts) {
            let base = x.withUnsafeBufferPointer { $0.baseAddress.map { UnsafeRawPointer($0) } }
            if let base, let i = seen[base], inputCounts[i] == n {
                index.append(i)
                continue
            }
            if let base { seen[base] = inputs.count }
            index.append(inputs.count)
            inputs.append(x)
            inputCounts.append(n)
        }
        self.init(inputs: inputs, counts: inputCounts, inputOfPair: index, layers: layers, modules: modules, inFeatures: inFeatures)
    }

    public var pairCount: Int { layers * modules }

    /// Input `i` in float64 `[n, in]`, its columns permuted: column c is the
    /// rows' column `permutation[c]` (all of them in order when nil).
    func rows(_ i: Int, permutation: [Int]? = nil) -> [Double] {
        let x = inputs[i], n = rowCounts[i], width = inFeatures
        guard let permutation else { return x.map(Double.init) }
        var d = [Double](repeating: 0, count: x.count)
        for r in 0..<n {
            let row = r * width
            for c in 0..<width { d[row + c] = Double(x[row + permutation[c]]) }
        }
        return d
    }

    /// Bytes per block of `forEachBlock`: 32 rows of 1024 float64 are 256 KB, a
    /// block that stays in a core's L2 with its products (2 MB blocks measured
    /// 1.5× slower on prune-tt's first pass, 256 KB a little faster than 512 KB).
    static let blockBytes = 256 * 1024

    /// Streams input `i` in float64 blocks of rows (columns permuted as in
    /// `rows`): `body(block, first, count)` with `block` `[count, in]` for rows
    /// `first ..< first + count`. `workspace` holds one block (`blockCapacity`
    /// doubles); the rows are converted block by block, so a pass reads the
    /// float32 rows once and never allocates an input-sized buffer (a fresh one
    /// costs its first touch on every call, DESIGN §8).
    func forEachBlock(_ i: Int, permutation: [Int]?, workspace: UnsafeMutableBufferPointer<Double>,
                      _ body: (UnsafePointer<Double>, Int, Int) -> Void) {
        let width = inFeatures, n = rowCounts[i], blockRows = max(1, workspace.count / width)
        inputs[i].withUnsafeBufferPointer { x in
            var first = 0
            while first < n {
                let count = min(blockRows, n - first)
                // Pointer loops without index arithmetic in them, so they vectorise.
                for r in 0..<count {
                    let source = x.baseAddress! + (first + r) * width, target = workspace.baseAddress! + r * width
                    if let permutation {
                        permutation.withUnsafeBufferPointer { order in
                            for c in 0..<width { target[c] = Double(source[order[c]]) }
                        }
                    } else {
                        for c in 0..<width { target[c] = Double(source[c]) }
                    }
                }
                body(UnsafePointer(workspace.baseAddress!), first, count)
                first += count
            }
        }
    }

    /// Rows per block when set (tests: several blocks on small inputs).
    var blockRows: Int?

    var blockCapacity: Int { (blockRows ?? max(Self.blockBytes / 8 / inFeatures, 1)) * inFeatures }

    /// Per-pair output energy `Σ_rows ‖x·ΔWᵀ‖²` of the dense tensor `d` (row-major
    /// over `modes` in train order), at index `l·modules + m`.
    public func pairEnergies(_ d: [Double], modes: [TTMode]) -> [Double] {
        let blocks = Self.pairDeltas(d, modes: modes, pairs: pairCount, inFeatures: inFeatures)
        return blocks.indices.map { energy(blocks[$0], pair: $0) }
    }

    /// `D[l, m]` `[out, in]` (row-major, out and in by factor order) of the dense
    /// tensor `d` (row-major over `modes` in train order), at index `l·modules + m`.
    public static func pairDeltas(_ d: [Double], modes: [TTMode], pairs: Int, inFeatures: Int) -> [[Double]] {
        let layout = ModeLayout(modes, side: Array(modes.indices))
        let outCount = d.count / (inFeatures * pairs)
        var blocks = [[Double]](repeating: [Double](repeating: 0, count: outCount * inFeatures), count: pairs)
        for p in d.indices {
            let (pair, out, input) = layout.split(p)
            blocks[pair][out * inFeatures + input] = d[p]
        }
        return blocks
    }

    /// `Σ_rows ‖x·eᵀ‖²` for a dense `e` `[out, in]`: its output energy on pair b's rows.
    public func energy(_ e: [Double], pair b: Int) -> Double {
        let outCount = e.count / inFeatures, i = inputOfPair[b]
        let y = DenseLinearAlgebra.multiply(rows(i), e, m: rowCounts[i], n: outCount, k: inFeatures, transB: true)
        return y.reduce(0) { $0 + $1 * $1 }
    }
}

/// Index arithmetic for the modes on one side of a bond: a row index of the
/// side's product (row-major over its modes) splits into the side's
/// (layer, module) block, its unweighted (out) index and its in index.
struct ModeLayout {
    let modes: [TTMode]
    let side: [Int]
    /// Per side mode: stride in the row index.
    let strides: [Int]
    let moduleSize: Int
    let sizes: [Int]
    let target: [Int]
    let weights: [Int]

    init(_ modes: [TTMode], side: [Int]) {
        self.modes = modes
        self.side = side
        var strides = [Int](repeating: 1, count: side.count)
        var s = 1
        for j in side.indices.reversed() {
            strides[j] = s
            s *= modes[side[j]].size
        }
        self.strides = strides
        let sideModes = side.map { modes[$0] }
        let moduleSize = sideModes.first { $0.kind == .module }?.size ?? 1
        self.moduleSize = moduleSize
        // Each side mode's digit adds digit·weight to the block (0), out (1) or in (2) index:
        // block = layer·moduleSize + module; out and in row-major over their factors (factor 0 most significant).
        sizes = sideModes.map(\.size)
        target = sideModes.map { $0.kind == .layer || $0.kind == .module ? 0 : $0.kind == .out ? 1 : 2 }
        weights = sideModes.map { mode in
            switch mode.kind {
            case .layer: return moduleSize
            case .module: return 1
            case .out, .in:
                return sideModes.filter { $0.kind == mode.kind && $0.factor > mode.factor }.reduce(1) { $0 * $1.size }
            }
        }
    }

    /// (block, out, in) of row p; out and in row-major by factor index.
    func split(_ p: Int) -> (pair: Int, out: Int, input: Int) {
        var pair = 0, out = 0, input = 0
        for j in side.indices {
            let digit = (p / strides[j]) % sizes[j]
            switch target[j] {
            case 0: pair += digit * weights[j]
            case 1: out += digit * weights[j]
            default: input += digit * weights[j]
            }
        }
        return (pair, out, input)
    }
}
