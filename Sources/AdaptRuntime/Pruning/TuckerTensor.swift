/// A Tucker delta tensor in float64 (DESIGN §2): the core, row-major over
/// `coreSizes` in the group's mode order (r_k, or n_k where the mode is
/// `full`), and a factor U_k `[n_k, r_k]` per non-full mode, so
/// `D = C ×₁ U_1 ⋯ ×_N U_N` with the identity for a full mode.
///
/// Every pair's ΔW is a small matrix between two Kronecker products:
/// `D[l, m] = U_out · Z[l, m] · U_inᵀ`, with `U_out = ⊗ U_out.k` (factor order,
/// identity where full), the same for `in`, and
/// `Z[l, m] = Σ_{a,b} U_layer[l, a] U_module[m, b] C[a, b, out…, in…]`
/// `[R_out, R_in]` (the core with its layer and module modes contracted).
/// So the output energy on the calibration rows is
/// `E_{l,m} = tr(Zᵀ (U_outᵀ U_out) Z (U_inᵀ G_{l,m} U_in))` — the dense tensor
/// is never formed, and with orthonormal factors `U_outᵀU_out = I`.
public struct TuckerTensor: Sendable {
    public var modes: [TTMode]
    public var core: [Double]
    /// U_k row-major `[n_k, r_k]`, nil for a full mode.
    public var factors: [[Double]?]
    public var coreSizes: [Int]

    /// - Parameters:
    ///   - core: Row-major over the modes' core sizes.
    ///   - factors: U_k `[n_k, r_k]` per mode, nil where the mode is full.
    ///   - modes: The group's modes in its order.
    public init(core: [Double], factors: [[Double]?], modes: [TTMode]) {
        precondition(factors.count == modes.count, "TuckerTensor: one factor (or nil) per mode")
        let sizes = zip(modes, factors).map { mode, u in u.map { $0.count / mode.size } ?? mode.size }
        for (mode, u) in zip(modes, factors) { precondition(u.map { $0.count % mode.size == 0 } ?? true) }
        precondition(core.count == sizes.reduce(1, *), "TuckerTensor: the core does not match its factors")
        self.modes = modes
        self.core = core
        self.factors = factors
        self.coreSizes = sizes
    }

    /// The same from the stored float32 tensors.
    /// - Parameters:
    ///   - core: Row-major over the modes' core sizes.
    ///   - factors: U_k `[n_k, r_k]` per mode, nil where the mode is full.
    ///   - modes: The group's modes in its order.
    public init(core: [Float], factors: [[Float]?], modes: [TTMode]) {
        self.init(core: core.map(Double.init), factors: factors.map { $0?.map(Double.init) }, modes: modes)
    }

    /// Per mode r_k, nil where full.
    public var ranks: [Int?] { modes.indices.map { factors[$0] == nil ? nil : coreSizes[$0] } }

    var layerMode: Int? { modes.firstIndex { $0.kind == .layer } }
    var moduleMode: Int? { modes.firstIndex { $0.kind == .module } }
    /// The out (in) modes by factor order: ΔW's rows (columns) are row-major over them.
    func modes(_ kind: TTMode.Kind) -> [Int] {
        modes.indices.filter { modes[$0].kind == kind }.sorted { modes[$0].factor < modes[$1].factor }
    }

    /// C ×_k M for M `[new, c_k]`: mode k's size becomes `new`.
    mutating func multiplyCore(mode k: Int, by m: [Double], rows new: Int) {
        let old = coreSizes[k]
        (core, coreSizes) = DenseTensor.with(core, shape: coreSizes) {
            $0.modeProduct(mode: k, m, rows: new, columns: old, transposed: false, threads: 1)
        }
    }

    /// Orthonormal factors (thin QR, each R pushed into the core): the gauge in
    /// which the core's energy is the tensor's. D is unchanged.
    public mutating func orthonormalise() {
        for k in modes.indices {
            guard let u = factors[k] else { continue }
            let (q, r, kept) = DenseLinearAlgebra.thinQR(u, rows: modes[k].size, cols: coreSizes[k])
            factors[k] = q
            multiplyCore(mode: k, by: r, rows: kept)
        }
    }

    /// The core permuted to `[layer, module, out…, in…]` (factor order), as
    /// `[c_layer · c_module, R_out · R_in]`, with those four sizes.
    func canonicalCore() -> (values: [Double], layer: Int, module: Int, out: Int, in: Int) {
        let order = [layerMode, moduleMode].compactMap { $0 } + modes(.out) + modes(.in)
        let values = Self.permuted(core, sizes: coreSizes, order: order)
        let size = { (k: Int?) in k.map { coreSizes[$0] } ?? 1 }
        return (values, size(layerMode), size(moduleMode), modes(.out).reduce(1) { $0 * coreSizes[$1] },
                modes(.in).reduce(1) { $0 * coreSizes[$1] })
    }

    /// The tensor with its modes in `order` (a permutation), row-major.
    static func permuted(_ values: [Double], sizes: [Int], order: [Int]) -> [Double] {
        if order == Array(sizes.indices) { return values }
        var strides = [Int](repeating: 1, count: sizes.count)
        for k in sizes.indices.dropLast().reversed() { strides[k] = strides[k + 1] * sizes[k + 1] }
        let newSizes = order.map { sizes[$0] }
        var result = [Double](repeating: 0, count: values.count)
        var digits = [Int](repeating: 0, count: order.count)
        for p in result.indices {
            var source = 0
            for (j, k) in order.enumerated() { source += digits[j] * strides[k] }
            result[p] = values[source]
            var j = order.count - 1
            while j >= 0 { digits[j] += 1; if digits[j] < newSizes[j] { break }; digits[j] = 0; j -= 1 }
        }
        return result
    }

    /// Row `index` of mode k's factor (the unit vector where the mode is full), `[c_k]`.
    func row(_ k: Int?, _ index: Int) -> [Double] {
        guard let k else { return [1] }
        guard let u = factors[k] else {
            var e = [Double](repeating: 0, count: coreSizes[k])
            e[index] = 1
            return e
        }
        return Array(u[(index * coreSizes[k])..<((index + 1) * coreSizes[k])])
    }

    /// ⊗ of the factors of `kind`'s modes (factor order; identity where full): `[features, R]`.
    func kronecker(_ kind: TTMode.Kind) -> [Double] {
        var result = [1.0], rows = 1, cols = 1
        for k in modes(kind) {
            let n = modes[k].size, r = coreSizes[k]
            let u = factors[k] ?? Self.identity(n)
            var next = [Double](repeating: 0, count: rows * n * cols * r)
            for i in 0..<rows { for a in 0..<cols { let x = result[i * cols + a]; if x == 0 { continue }
                for j in 0..<n { for b in 0..<r { next[(i * n + j) * (cols * r) + a * r + b] = x * u[j * r + b] } } } }
            result = next
            rows *= n
            cols *= r
        }
        return result
    }

    static func identity(_ n: Int) -> [Double] {
        var e = [Double](repeating: 0, count: n * n)
        for i in 0..<n { e[i * n + i] = 1 }
        return e
    }

    /// Z[l, m] `[R_out, R_in]` at index `l·modules + m`.
    func pairMatrices(layers: Int, modules: Int) -> [[Double]] {
        let c = canonicalCore()
        var result: [[Double]] = []
        for l in 0..<layers {
            let wl = row(layerMode, l)
            for m in 0..<modules {
                let wm = row(moduleMode, m)
                var w = [Double](repeating: 0, count: c.layer * c.module)
                for a in 0..<c.layer { for b in 0..<c.module { w[a * c.module + b] = wl[a] * wm[b] } }
                result.append(DenseLinearAlgebra.multiply(w, c.values, m: 1, n: c.out * c.in, k: c.layer * c.module))
            }
        }
        return result
    }

    /// ΔW[l, m]/s `[out, in]` (out and in row-major by factor order), at `l·modules + m`.
    /// - Parameters:
    ///   - layers: The layer mode's size (1 without one).
    ///   - modules: The module mode's size (1 without one).
    public func pairDeltas(layers: Int, modules: Int) -> [[Double]] {
        let uOut = kronecker(.out), uIn = kronecker(.in)
        let rOut = modes(.out).reduce(1) { $0 * coreSizes[$1] }, rIn = modes(.in).reduce(1) { $0 * coreSizes[$1] }
        let outCount = uOut.count / rOut, inCount = uIn.count / rIn
        return pairMatrices(layers: layers, modules: modules).map { z in
            let left = DenseLinearAlgebra.multiply(uOut, z, m: outCount, n: rIn, k: rOut)
            return DenseLinearAlgebra.multiply(left, uIn, m: outCount, n: inCount, k: rIn, transB: true)
        }
    }

    /// `U_inᵀ G_{l,m} U_in` `[R_in, R_in]` per pair: the Gram in the core's in space.
    func coreGrams(_ calibration: TTCalibration) -> [[Double]] {
        let u = kronecker(.in), r = u.count / calibration.inFeatures
        return calibration.projectedGrams(u, columns: r)
    }
}

extension TTCalibration {
    /// Σ xᵀx `[in, in]` of each pair's rows (float64), at `l·modules + m`: the
    /// weighting Tucker and CP pruning read (the one place they name how the
    /// calibration stores it).
    var pairGrams: [[Double]] {
        let width = inFeatures
        let grams = inputs.indices.map { i -> [Double] in
            let x = rows(i)
            return DenseLinearAlgebra.multiply(x, x, m: width, n: width, k: rowCounts[i], transA: true)
        }
        return inputOfPair.map { grams[$0] }
    }

    /// `Aᵀ·G_b·A` `[ra, ra]` of every pair b, at `l·modules + m`, for one in-side
    /// matrix A `[in, ra]`: `(x·A)ᵀ(x·A)`, computed once per input the pairs read
    /// (modules that share an input share it).
    func projectedGrams(_ a: [Double], columns ra: Int) -> [[Double]] {
        let grams = inputs.indices.map { i -> [Double] in
            let n = rowCounts[i], xa = DenseLinearAlgebra.multiply(rows(i), a, m: n, n: ra, k: inFeatures)
            return DenseLinearAlgebra.multiply(xa, xa, m: ra, n: ra, k: n, transA: true)
        }
        return inputOfPair.map { grams[$0] }
    }

    /// `Aᵀ·G_b·B` `[ra, rb]` for in-side matrices A `[in, ra]`, B `[in, rb]`:
    /// `Σ_rows (x·A)ᵀ(x·B)` of pair b's rows — the Gram in a factor's space,
    /// what every energy of a Tucker or CP tensor needs (never G itself, unless
    /// the in mode is full).
    func projectedGram(pair b: Int, _ a: [Double], columns ra: Int, _ c: [Double], columns rc: Int) -> [Double] {
        let i = inputOfPair[b], x = rows(i), n = rowCounts[i], width = inFeatures
        let xa = DenseLinearAlgebra.multiply(x, a, m: n, n: ra, k: width), xc = DenseLinearAlgebra.multiply(x, c, m: n, n: rc, k: width)
        return DenseLinearAlgebra.multiply(xa, xc, m: ra, n: rc, k: n, transA: true)
    }

    /// Per-pair `⟨X[l,m], Y[l,m]⟩_G = Σ_rows ⟨x·ΔX[l,m]ᵀ, x·ΔY[l,m]ᵀ⟩` of two Tucker
    /// tensors of the same modes (any ranks), at `l·modules + m`:
    /// `tr(Z_Xᵀ (U_out,Xᵀ U_out,Y) Z_Y (U_in,Yᵀ G U_in,X))`.
    /// - Parameters:
    ///   - x: The first tensor.
    ///   - y: The second, of the same modes.
    public func pairInnerProducts(_ x: TuckerTensor, _ y: TuckerTensor) -> [Double] {
        precondition(x.modes == y.modes, "TTCalibration: the Tucker tensors' modes differ")
        let n = inFeatures
        let xOut = x.kronecker(.out), yOut = y.kronecker(.out), xIn = x.kronecker(.in), yIn = y.kronecker(.in)
        let outCount = xOut.count / x.modes(.out).reduce(1) { $0 * x.coreSizes[$1] }
        let rxOut = xOut.count / outCount, ryOut = yOut.count / outCount, rxIn = xIn.count / n, ryIn = yIn.count / n
        let outCross = DenseLinearAlgebra.multiply(xOut, yOut, m: rxOut, n: ryOut, k: outCount, transA: true)
        let zx = x.pairMatrices(layers: layers, modules: modules), zy = y.pairMatrices(layers: layers, modules: modules)
        return (0..<(layers * modules)).map { b in
            let inCross = projectedGram(pair: b, yIn, columns: ryIn, xIn, columns: rxIn)
            let left = DenseLinearAlgebra.multiply(outCross, zy[b], m: rxOut, n: ryIn, k: ryOut)
            let product = DenseLinearAlgebra.multiply(left, inCross, m: rxOut, n: rxIn, k: ryIn)
            return zip(zx[b], product).reduce(0) { $0 + $1.0 * $1.1 }
        }
    }

    /// Per-pair output energy of a Tucker tensor, `E_{l,m} = ⟨X, X⟩_G`.
    /// - Parameter x: The tensor.
    public func pairEnergies(_ x: TuckerTensor) -> [Double] { pairInnerProducts(x, x) }

    /// Per-pair `E(X − Y) = E(X) − 2⟨X, Y⟩ + E(Y)`.
    /// - Parameters:
    ///   - x: The first tensor.
    ///   - y: The second, of the same modes.
    public func pairDistances(_ x: TuckerTensor, _ y: TuckerTensor) -> [Double] {
        let xx = pairEnergies(x), xy = pairInnerProducts(x, y), yy = pairEnergies(y)
        return xx.indices.map { max(xx[$0] - 2 * xy[$0] + yy[$0], 0) }
    }
}

extension TuckerTensor {
    /// The tensor of the layers `kept` (indices into the layer mode, ascending):
    /// their rows of the layer factor, or their slices of a full layer mode's
    /// core. A layer mode of one layer is no mode (DESIGN §2): the core is
    /// contracted with that layer's row and the mode removed. Nothing else changes.
    /// - Parameter kept: The layers kept, indices into the layer mode, ascending.
    public func keepingLayers(_ kept: [Int]) -> TuckerTensor {
        guard let k = layerMode else { return self }
        let c = coreSizes[k]
        var y = self
        if let u = factors[k] {
            let rows = kept.flatMap { u[($0 * c)..<(($0 + 1) * c)] }
            if kept.count > 1 {
                y.factors[k] = Array(rows)
                y.modes[k].size = kept.count
                return y
            }
            y.multiplyCore(mode: k, by: Array(rows), rows: 1)
        } else {
            // A full mode: select the slices, C ×ₖ (rows of the identity).
            var selection = [Double](repeating: 0, count: kept.count * c)
            for (j, l) in kept.enumerated() { selection[j * c + l] = 1 }
            y.multiplyCore(mode: k, by: selection, rows: kept.count)
            y.modes[k].size = kept.count
            if kept.count > 1 { return y }
        }
        y.modes.remove(at: k)
        y.factors.remove(at: k)
        y.coreSizes.remove(at: k)
        return y
    }
}
