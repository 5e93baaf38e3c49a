import AdaptRuntime

/// Where `recover` starts each adapter from, and the quantised base it runs on.
///
/// - lora pairs: LoftQ (Li et al. 2023; AdaptRuntime's `LoftQ`, as PEFT's
///   `loftq_init`): T alternations of Q = quantise(W − s·B·A) and s·B·A = the
///   rank-r truncation of W − Q. The pair's map in the quantised base becomes
///   that Q_T, as LoftQ ships it. With T = 1 this is PiSSA of W − quantise(W).
///   LoftQ wants the scale s, which the generated API does not expose: the
///   factors are made for s = 1, and s is read back from `materialize`, which
///   returns s·B·A (ΔW is linear in B: s = ⟨ΔW, B·A⟩ / ‖B·A‖²); both factors
///   are then divided by √s.
/// - tensor structures (no lora pairs), `tensorStart: .zero`: random cores with
///   the last core zero, so ΔW = 0 at the start and the first gradients reach
///   that core, as `adaptc init` starts them (DESIGN §3); the base stays the
///   plain quantised one. `.loftq`: `TensorTrainStart.loftq`, LoftQ with TT-SVD
///   of the stacked residual (W − Q)/s, and the base becomes its Q_T.
public enum AdapterStart {
    public enum TensorStart: String, Sendable { case zero, loftq }

    public struct BadLayout: Error, CustomStringConvertible { public let description: String }

    public struct Report: Sendable {
        /// ‖W − Q‖ / ‖W‖ of quantising the adapted maps alone, and ‖W − (Q_T + ΔW)‖ / ‖W‖
        /// after LoftQ, over all adapted maps together (0 for tensor structures).
        public var quantisationError = 0.0
        public var startError = 0.0
    }

    public static func initialise<Adapter: GeneratedAdapter>(
        _ adapter: Adapter, _ binding: AdapterBinding<Adapter>, float: EncoderWeights, quantised: inout EncoderWeights,
        quantiser: Quantiser, iterations: Int, seed: UInt64, tensorStart: TensorStart = .zero, threads: Int = 1
    ) throws -> Report {
        let layout = Adapter.parameterLayout
        var values = [Float](repeating: 0, count: Adapter.parameterCount)
        let pairs = LoRAFactorPair.pairs(in: layout)
        if pairs.isEmpty, tensorStart == .loftq {
            return try TensorTrainStart.loftq(adapter, binding, float: float, quantised: &quantised, quantiser: quantiser,
                                              iterations: iterations, threads: threads)
        }
        if pairs.isEmpty {
            let last = layout.last!
            for tensor in layout where tensor != last {
                var random = SeededRandom(seed: seed, stream: tensor.key)
                let fan = Double(max(1, tensor.count / max(tensor.shape.max() ?? 1, 1)))
                for i in 0..<tensor.count { values[tensor.offset + i] = random.uniform(1 / fan.squareRoot()) }
            }
            try adapter.setParameterValues(values)
            return Report()
        }
        var energy = 0.0, quantisationError = 0.0, startError = 0.0
        var located: [(LoRAFactorPair, Int, Adapter.Module)] = []
        for pair in pairs {
            let (layer, map) = try locate(pair.a.key)
            guard let module = binding.modules[map], layer < float.layers.count else {
                throw BadLayout(description: "\(Adapter.specName): \(pair.a.key) is not a pair of this encoder")
            }
            let w = float.weight(layer: layer, map: map)
            let result = try w.withUnsafeBufferPointer {
                try LoftQ.initialise($0, out: pair.outFeatures, in: pair.inFeatures, rank: pair.rank, scale: 1,
                                     quantiser: quantiser, iterations: iterations, decomposition: .exact, threads: threads)
            }
            energy += result.weightEnergy
            quantisationError += result.quantisationError * result.quantisationError * result.weightEnergy
            startError += result.relativeErrors.last! * result.relativeErrors.last! * result.weightEnergy
            quantised.replace(layer: layer, map: map, weight: quantiser.dequantise(result.quantised, threads: threads))
            values.replaceSubrange(pair.a.offset..<pair.a.offset + pair.a.count, with: result.a)
            values.replaceSubrange(pair.b.offset..<pair.b.offset + pair.b.count, with: result.b)
            located.append((pair, layer, module))
        }
        try adapter.setParameterValues(values)
        for (pair, layer, module) in located {
            let delta = try adapter.materialize(layer: layer, module: module)
            var product = [Float](repeating: 0, count: pair.outFeatures * pair.inFeatures)
            values.withUnsafeBufferPointer { v in
                BLAS.gemm(transA: false, transB: false, m: pair.outFeatures, n: pair.inFeatures, k: pair.rank, alpha: 1,
                          a: v.baseAddress! + pair.b.offset, lda: pair.rank, b: v.baseAddress! + pair.a.offset,
                          ldb: pair.inFeatures, beta: 0, c: &product, ldc: pair.inFeatures)
            }
            let inner = zip(delta, product).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
            let norm = product.reduce(0.0) { $0 + Double($1) * Double($1) }
            guard norm > 0, inner > 0 else { continue }
            let root = Float((inner / norm).squareRoot())
            for i in [pair.a, pair.b].flatMap({ $0.offset..<$0.offset + $0.count }) { values[i] /= root }
        }
        try adapter.setParameterValues(values)
        let total = max(energy, .leastNormalMagnitude)
        return Report(quantisationError: (quantisationError / total).squareRoot(), startError: (startError / total).squareRoot())
    }

    /// `GROUP.LAYER.MODULE.A` → (LAYER, MODULE); module names hold dots.
    public static func locate(_ key: String) throws -> (Int, EncoderMap) {
        let parts = key.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count >= 4, let layer = Int(parts[1]),
              let map = EncoderMap(rawValue: parts[2..<parts.count - 1].joined(separator: "."))
        else { throw BadLayout(description: "adapter key '\(key)' is not GROUP.LAYER.MODULE.A of a MiniLM map") }
        return (layer, map)
    }
}
