import AdaptRuntime

/// LoftQ for a tensor-train shared across layers and modules (Li et al. 2023,
/// with TT-SVD in place of the truncated SVD, as `adaptc init` does it for
/// tensor groups, DESIGN §3): for t = 1…T,
///
///     Q_t[l,m] = quantise(W[l,m] − ΔW_{t−1}[l,m])          (ΔW_0 = 0)
///     ΔW_t     = s · TT-SVD((W − Q_t)/s stacked in the spec's order)
///
/// at the spec's bond ranks. The adapted maps of the base become Q_T, the Q
/// the last train was fitted to. With T = 1 this is the principal tensor
/// (PiSSA generalised across layers) of what quantisation lost.
///
/// The generated API carries the cores' shapes but not which mode each core
/// holds, so the caller names the order (the app's specs use MetaTT's `[in,
/// layer, module, out]`); size-1 modes drop out as in the spec. TT-SVD is
/// homogeneous, so the train is fitted to W − Q and the scale s is read back
/// from `materialize` (which returns s·D) and divided out of the last core;
/// every pair's materialized ΔW is then checked against the train, so an order
/// that is not the spec's is an error, never a wrong start.
public enum TensorTrainStart {
    public enum Mode: Sendable { case `in`, layer, module, out }

    public static let metaTTOrder: [Mode] = [.in, .layer, .module, .out]

    public static func loftq<Adapter: GeneratedAdapter>(
        _ adapter: Adapter, _ binding: AdapterBinding<Adapter>, float: EncoderWeights, quantised: inout EncoderWeights,
        quantiser: Quantiser, iterations: Int, order: [Mode] = metaTTOrder, threads: Int = 1
    ) throws -> AdapterStart.Report {
        let layout = Adapter.parameterLayout
        let modules = Array(Adapter.Module.allCases)
        let shapes = modules.map(Adapter.shape(of:))
        guard let shape = shapes.first, shapes.allSatisfy({ $0 == shape }) else {
            throw AdapterStart.BadLayout(description: "\(Adapter.specName): a tensor-train needs modules of one shape")
        }
        let layers = float.layers.count
        let full: [Mode: Int] = [.in: shape.in, .layer: layers, .module: modules.count, .out: shape.out]
        let modes = order.filter { full[$0]! > 1 }
        let sizes = modes.map { full[$0]! }
        guard layout.count == modes.count, zip(layout, sizes).allSatisfy({ $0.shape.count == 3 && $0.shape[1] == $1 }) else {
            throw AdapterStart.BadLayout(description: "\(Adapter.specName): cores \(layout.map(\.shape)) are not a tensor-train "
                                         + "over modes \(modes) of sizes \(sizes)")
        }
        let caps = layout.dropLast().map { $0.shape[2] }
        // Row-major strides of the stacked tensor D[modes…]; a dropped mode has stride 0.
        var stride: [Mode: Int] = [.in: 0, .layer: 0, .module: 0, .out: 0]
        var step = 1
        for (mode, size) in zip(modes, sizes).reversed() {
            stride[mode] = step
            step *= size
        }
        let (si, sl, sm, so) = (stride[.in]!, stride[.layer]!, stride[.module]!, stride[.out]!)
        let pairs = (0..<layers).flatMap { l in modules.indices.map { (l, $0) } }
        func map(_ m: Int) -> EncoderMap { binding.maps.first { binding.modules[$0] == modules[m] }! }
        let weights = pairs.map { float.weight(layer: $0.0, map: map($0.1)) }

        var delta = [Double](repeating: 0, count: step)  // ΔW_{t−1} stacked; ΔW_0 = 0
        var bases: [[Float]] = []
        var train: TTSVD!
        var energy = 0.0, quantisationError = 0.0
        for t in 0..<iterations {
            var residual = [Double](repeating: 0, count: step)
            bases = []
            for (p, (l, m)) in pairs.enumerated() {
                let w = weights[p]
                var target = w
                for o in 0..<shape.out {
                    for i in 0..<shape.in { target[o * shape.in + i] -= Float(delta[i * si + l * sl + m * sm + o * so]) }
                }
                let q = quantiser.dequantise(try target.withUnsafeBufferPointer {
                    try quantiser.quantise($0, rows: shape.out, columns: shape.in, threads: threads)
                }, threads: threads)
                for o in 0..<shape.out {
                    for i in 0..<shape.in {
                        let e = o * shape.in + i, r = Double(w[e]) - Double(q[e])
                        residual[i * si + l * sl + m * sm + o * so] = r
                        if t == 0 {
                            energy += Double(w[e]) * Double(w[e])
                            quantisationError += r * r
                        }
                    }
                }
                bases.append(q)
            }
            train = try TTSVD.decompose(DenseUnfolding(residual, rows: sizes[0]), modeSizes: sizes, caps: caps, threads: threads)
            delta = train.full()
        }

        // The cores at the spec's shapes (a bond the residual's rank made smaller is zero-padded), scale read back.
        let ranks = train.ranks, planRanks = [1] + caps + [1]
        var values = [Float](repeating: 0, count: Adapter.parameterCount)
        func write(lastCoreDividedBy scale: Double) throws {
            for (k, tensor) in layout.enumerated() {
                let (a, n, b) = (ranks[k], sizes[k], ranks[k + 1]), pb = planRanks[k + 1]
                let divisor = k == layout.count - 1 ? scale : 1
                for x in 0..<a { for j in 0..<n { for y in 0..<b {
                    values[tensor.offset + (x * n + j) * pb + y] = Float(train.cores[k][(x * n + j) * b + y] / divisor)
                } } }
            }
            try adapter.setParameterValues(values)
        }
        try write(lastCoreDividedBy: 1)
        let first = try adapter.materialize(layer: 0, module: modules[0])
        var inner = 0.0, norm = 0.0
        for o in 0..<shape.out {
            for i in 0..<shape.in {
                let d = delta[i * si + o * so]
                inner += Double(first[o * shape.in + i]) * d
                norm += d * d
            }
        }
        let scale = norm > 0 && inner > 0 ? inner / norm : 1
        try write(lastCoreDividedBy: scale)

        // Every pair's ΔW is the train's (else the order named is not the spec's); the start's error on the way.
        var startError = 0.0
        for (p, (l, m)) in pairs.enumerated() {
            let materialized = try adapter.materialize(layer: l, module: modules[m])
            var worst = 0.0, largest = 0.0
            for o in 0..<shape.out {
                for i in 0..<shape.in {
                    let e = o * shape.in + i, d = delta[i * si + l * sl + m * sm + o * so]
                    worst = max(worst, abs(Double(materialized[e]) - d))
                    largest = max(largest, abs(d))
                    let r = Double(weights[p][e]) - Double(bases[p][e]) - Double(materialized[e])
                    startError += r * r
                }
            }
            guard worst <= 1e-3 * max(largest, 1e-30) else {
                throw AdapterStart.BadLayout(description: "\(Adapter.specName): layer \(l) \(Adapter.moduleName(modules[m])): the "
                                             + "cores do not give the TT-SVD's ΔW; is the spec's order \(order)?")
            }
            quantised.replace(layer: l, map: map(m), weight: bases[p])
        }
        let total = max(energy, .leastNormalMagnitude)
        return AdapterStart.Report(quantisationError: (quantisationError / total).squareRoot(),
                                   startError: (startError / total).squareRoot())
    }
}
