import AdaptRuntime

extension EncoderWeights {
    /// The same encoder with `maps` of every layer replaced by their weights
    /// quantised blockwise (`bits`, groups of `group` input columns per row)
    /// and dequantised: what a 4-bit model computes, in float. Biases,
    /// embeddings and LayerNorms stay float, as in QLoRA.
    public func quantised(bits: Int, group: Int, maps: [EncoderMap] = EncoderMap.allCases) -> EncoderWeights {
        var result = self
        for layer in result.layers.indices {
            for map in maps {
                let linear = layers[layer][map] as! Linear
                let q = BlockQuantisation.roundTrip(linear.weight, rows: linear.outFeatures, columns: linear.inFeatures,
                                                    bits: bits, group: group)
                result.layers[layer][map] = Linear(weight: q, bias: linear.bias, inFeatures: linear.inFeatures,
                                                   outFeatures: linear.outFeatures)
            }
        }
        return result
    }

    /// W − Q of each layer's `maps` against `quantised` ([out, in] row-major):
    /// what quantisation took away, which an adapter is trained to give back.
    public func lost(to quantised: EncoderWeights, maps: [EncoderMap]) -> [[EncoderMap: [Float]]] {
        layers.indices.map { layer in
            var lost: [EncoderMap: [Float]] = [:]
            for map in maps {
                let w = (layers[layer][map] as! Linear).weight, q = (quantised.layers[layer][map] as! Linear).weight
                lost[map] = zip(w, q).map { $0 - $1 }
            }
            return lost
        }
    }
}

/// Symmetric blockwise absmax quantisation: each group of `group` weights of a
/// row shares the scale absmax / (2^(bits−1) − 1), codes round half to even and
/// are clamped to ±(2^(bits−1) − 1). Dequantised in place of the float weight.
enum BlockQuantisation {
    static func roundTrip(_ weight: [Float], rows: Int, columns: Int, bits: Int, group: Int) -> [Float] {
        precondition(columns % group == 0 && (2...8).contains(bits))
        let levels = Float((1 << (bits - 1)) - 1)
        var out = weight
        for start in stride(from: 0, to: rows * columns, by: group) {
            let block = weight[start..<start + group]
            let absmax = block.reduce(0) { Swift.max($0, abs($1)) }
            guard absmax > 0 else { continue }
            let scale = absmax / levels
            for i in start..<start + group {
                out[i] = Swift.min(Swift.max((weight[i] / scale).rounded(.toNearestOrEven), -levels), levels) * scale
            }
        }
        return out
    }
}
