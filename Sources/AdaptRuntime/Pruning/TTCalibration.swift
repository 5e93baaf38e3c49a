/// The calibration weighting of a tensor-train group (DESIGN §4): one Gram
/// matrix `G_{l,m} = Σ_rows xᵀx` `[in, in]` per (layer, module) of the group,
/// accumulated in float64. The output energy of a delta tensor D on the rows
/// is `E(D) = Σ_{l,m} Σ_rows ‖x·ΔW[l,m]ᵀ‖² = Σ_{l,m} tr(ΔW[l,m]·G_{l,m}·ΔW[l,m]ᵀ)`.
public struct TTCalibration: Sendable {
    public let layers: Int
    public let modules: Int
    public let inFeatures: Int
    /// G_{l,m} at index `l·modules + m`, row-major `[in, in]`.
    public let grams: [[Double]]

    /// `rows[l·modules + m]` are the rows `[count, in]` of pair (l, m), in the
    /// group's layer and module order.
    public init(rows: [[Float]], counts: [Int], layers: Int, modules: Int, inFeatures: Int) {
        precondition(rows.count == layers * modules && counts.count == rows.count)
        self.layers = layers
        self.modules = modules
        self.inFeatures = inFeatures
        grams = zip(rows, counts).map { x, n in
            precondition(x.count == n * inFeatures, "TTCalibration: rows do not match [n, in]")
            return DenseLinearAlgebra.multiply(x.map(Double.init), x.map(Double.init), m: inFeatures, n: inFeatures, k: n, transA: true)
        }
    }

    public init(grams: [[Double]], layers: Int, modules: Int, inFeatures: Int) {
        precondition(grams.count == layers * modules && grams.allSatisfy { $0.count == inFeatures * inFeatures })
        self.layers = layers
        self.modules = modules
        self.inFeatures = inFeatures
        self.grams = grams
    }

    /// Per-pair output energy `tr(ΔW·G·ΔWᵀ)` of the dense tensor `d` (row-major
    /// over `modes` in train order), at index `l·modules + m`.
    public func pairEnergies(_ d: [Double], modes: [TTMode]) -> [Double] {
        let blocks = Self.pairDeltas(d, modes: modes, pairs: layers * modules, inFeatures: inFeatures)
        let outCount = d.count / (inFeatures * layers * modules)
        return blocks.indices.map { b in
            let product = DenseLinearAlgebra.multiply(blocks[b], grams[b], m: outCount, n: inFeatures, k: inFeatures)
            return zip(product, blocks[b]).reduce(0) { $0 + $1.0 * $1.1 }
        }
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

    /// `tr(E·G_b·Eᵀ)` for a dense `e` `[out, in]`: its output energy on pair b's rows.
    public func energy(_ e: [Double], pair b: Int) -> Double {
        let outCount = e.count / inFeatures
        let product = DenseLinearAlgebra.multiply(e, grams[b], m: outCount, n: inFeatures, k: inFeatures)
        return zip(product, e).reduce(0) { $0 + $1.0 * $1.1 }
    }

    /// The weighted factor `M` of one side of a bond: for `f` `[P, r]` (the
    /// side's cores multiplied out, rows row-major over `modes[side]`), the
    /// matrix with `MᵀM = fᵀ·Ḡ·f`, where Ḡ is the weighting restricted to this
    /// side: block-diagonal in the side's layer and module, acting on the side's
    /// in modes with the Gram pooled over what lies on the other side (summed
    /// over the other side's layers and modules, traced over its in modes).
    /// When every weighted mode is on this side, Ḡ is the exact weighting and
    /// `‖M‖² = E(D)` for `D = f·Q` with Q's rows orthonormal. `M = (S̄ ⊗ I)·f`
    /// with `S̄ = Ḡ^{1/2}` (eigen square root, see `gramSquareRoot`).
    func weightedFactor(_ f: [Double], rank r: Int, modes: [TTMode], side: [Int]) -> [Double] {
        let layout = ModeLayout(modes, side: side)
        let rows = f.count / r
        let pooled = pooledGrams(layout)
        let roots = pooled.map { DenseLinearAlgebra.gramSquareRoot($0, n: layout.sideIn) }
        // Rows of f grouped by (block, unweighted index), each group an [inP, r] matrix.
        let groups = layout.sidePairs * layout.sideOut
        var gathered = [[Double]](repeating: [Double](repeating: 0, count: layout.sideIn * r), count: groups)
        for p in 0..<rows {
            let (pair, out, input) = layout.split(p)
            let g = pair * layout.sideOut + out
            for j in 0..<r { gathered[g][input * r + j] = f[p * r + j] }
        }
        var m: [Double] = []
        m.reserveCapacity(rows * r)
        for g in 0..<groups {
            m += DenseLinearAlgebra.multiply(roots[g / layout.sideOut], gathered[g], m: layout.sideIn, n: r, k: layout.sideIn)
        }
        return m
    }

    /// Ḡ per block of the side's (layer, module) values, `[inP, inP]`.
    func pooledGrams(_ layout: ModeLayout) -> [[Double]] {
        let n = layout.sideIn
        var pooled = [[Double]](repeating: [Double](repeating: 0, count: n * n), count: layout.sidePairs)
        let (inSide, inOther) = layout.inSplit(inFeatures)
        for l in 0..<layers {
            for m in 0..<modules {
                let block = layout.sidePair(layer: l, module: m)
                let g = grams[l * modules + m]
                for i in 0..<inFeatures {
                    for i2 in 0..<inFeatures where inOther[i] == inOther[i2] {
                        pooled[block][inSide[i] * n + inSide[i2]] += g[i * inFeatures + i2]
                    }
                }
            }
        }
        return pooled
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
    let hasLayer: Bool
    let hasModule: Bool
    let layerSize: Int
    let moduleSize: Int
    /// Products of the side's in and out mode sizes.
    let sideIn: Int
    let sideOut: Int
    var sidePairs: Int { layerSize * moduleSize }

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
        let layer = sideModes.first { $0.kind == .layer }, module = sideModes.first { $0.kind == .module }
        hasLayer = layer != nil
        hasModule = module != nil
        layerSize = layer?.size ?? 1
        moduleSize = module?.size ?? 1
        sideIn = sideModes.filter { $0.kind == .in }.reduce(1) { $0 * $1.size }
        sideOut = sideModes.filter { $0.kind == .out }.reduce(1) { $0 * $1.size }
        // Each side mode's digit adds digit·weight to the block (0), out (1) or in (2) index:
        // block = layer·moduleSize + module; out and in row-major over their factors (factor 0 most significant).
        sizes = sideModes.map(\.size)
        target = sideModes.map { $0.kind == .layer || $0.kind == .module ? 0 : $0.kind == .out ? 1 : 2 }
        let moduleSize = self.moduleSize
        weights = sideModes.map { mode in
            switch mode.kind {
            case .layer: return moduleSize
            case .module: return 1
            case .out, .in:
                return sideModes.filter { $0.kind == mode.kind && $0.factor > mode.factor }.reduce(1) { $0 * $1.size }
            }
        }
    }
    let sizes: [Int]
    let target: [Int]
    let weights: [Int]

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

    /// The side's block of a (layer, module) of the group (the other side's are pooled).
    func sidePair(layer: Int, module: Int) -> Int {
        (hasLayer ? layer : 0) * moduleSize + (hasModule ? module : 0)
    }

    /// For every full in index i: its index over the side's in modes and over the others'.
    func inSplit(_ inFeatures: Int) -> (side: [Int], other: [Int]) {
        let inModes = modes.filter { $0.kind == .in }.sorted { $0.factor < $1.factor }
        let onSide = Set(side.filter { modes[$0].kind == .in }.map { modes[$0].factor })
        var sideIndex = [Int](repeating: 0, count: inFeatures), otherIndex = [Int](repeating: 0, count: inFeatures)
        for i in 0..<inFeatures {
            var rest = i, s = 0, o = 0, sScale = 1, oScale = 1
            for mode in inModes.reversed() {
                let digit = rest % mode.size
                rest /= mode.size
                if onSide.contains(mode.factor) { s += digit * sScale; sScale *= mode.size } else { o += digit * oScale; oScale *= mode.size }
            }
            sideIndex[i] = s
            otherIndex[i] = o
        }
        return (sideIndex, otherIndex)
    }
}
