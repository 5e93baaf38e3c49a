import AdaptRuntime

/// Where `recover` starts each adapter from.
///
/// - lora pairs: PiSSA of what quantisation took away, W − Q: s·B·A is the
///   rank-r truncation of W − Q, √σ split into both factors as PEFT's PiSSA
///   does. (LoftQ alternates this with re-quantising; here Q stays the plain
///   int4 model, so one truncation is LoftQ's first iteration.) The scale s is
///   not part of the generated API; it is read back from `materialize`, which
///   returns s·B·A: ΔW is linear in B, so s = ⟨ΔW, B·A⟩ / ‖B·A‖².
/// - tensor structures (no lora pairs): random cores with the last core zero,
///   so ΔW = 0 at the start and the first gradients reach that core, as
///   `adaptc init` starts them (DESIGN §3); principal tensor-train init of the
///   stacked W − Q is left for when `adaptc init` has it.
public enum AdapterStart {
    public struct BadLayout: Error, CustomStringConvertible { public let description: String }

    /// Returns the energy of W − Q the rank-r truncations capture (0 for tensor structures).
    public static func initialise<Adapter: GeneratedAdapter>(_ adapter: Adapter, _ binding: AdapterBinding<Adapter>,
                                                      lost: [[EncoderMap: [Float]]], seed: UInt64) throws -> Double {
        let layout = Adapter.parameterLayout
        var values = [Float](repeating: 0, count: Adapter.parameterCount)
        let pairs = LoRAFactorPair.pairs(in: layout)
        if pairs.isEmpty {
            let last = layout.last!
            for tensor in layout where tensor != last {
                var random = SeededRandom(seed: seed, stream: tensor.key)
                let fan = Double(max(1, tensor.count / max(tensor.shape.max() ?? 1, 1)))
                for i in 0..<tensor.count { values[tensor.offset + i] = random.uniform(1 / fan.squareRoot()) }
            }
            try adapter.setParameterValues(values)
            return 0
        }
        var captured = 0.0, total = 0.0
        var located: [(LoRAFactorPair, Int, Adapter.Module)] = []
        for pair in pairs {
            let (layer, map) = try locate(pair.a.key)
            guard let module = binding.modules[map], let difference = lost[layer][map] else {
                throw BadLayout(description: "\(Adapter.specName): \(pair.a.key) adapts a map that is not quantised")
            }
            let factors = try difference.withUnsafeBufferPointer {
                try PrincipalInit.factors($0, out: pair.outFeatures, in: pair.inFeatures, rank: pair.rank, scale: 1,
                                          method: .pissa, decomposition: .exact)
            }
            let energy = difference.reduce(0.0) { $0 + Double($1) * Double($1) }
            captured += factors.capturedEnergy * energy
            total += energy
            values.replaceSubrange(pair.a.offset..<pair.a.offset + pair.a.count, with: factors.a)
            values.replaceSubrange(pair.b.offset..<pair.b.offset + pair.b.count, with: factors.b)
            located.append((pair, layer, module))
        }
        try adapter.setParameterValues(values)
        // s·B·A came back from materialize: divide both factors by √s.
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
        return total > 0 ? captured / total : 0
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
