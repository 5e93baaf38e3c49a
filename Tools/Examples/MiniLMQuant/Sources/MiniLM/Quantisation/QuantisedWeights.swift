import AdaptRuntime

extension EncoderWeights {
    /// The same encoder with `maps` of every layer replaced by their weights
    /// quantised by `quantiser` (AdaptRuntime's blockwise absmax, groups along
    /// `in`) and dequantised: what a 4-bit model computes, in float. Biases,
    /// embeddings and LayerNorms stay float, as in QLoRA.
    public func quantised(_ quantiser: Quantiser, maps: [EncoderMap] = EncoderMap.allCases,
                          threads: Int = 1) throws -> EncoderWeights {
        var result = self
        for layer in layers.indices {
            for map in maps {
                let linear = layers[layer][map] as! Linear
                let codes = try linear.weight.withUnsafeBufferPointer {
                    try quantiser.quantise($0, rows: linear.outFeatures, columns: linear.inFeatures, threads: threads)
                }
                result.replace(layer: layer, map: map, weight: quantiser.dequantise(codes, threads: threads))
            }
        }
        return result
    }

    /// `map`'s weight in `layer` set to `weight` ([out, in] row-major), its bias kept.
    public mutating func replace(layer: Int, map: EncoderMap, weight: [Float]) {
        let linear = layers[layer][map]
        let bias = (linear as! Linear).bias
        layers[layer][map] = Linear(weight: weight, bias: bias, inFeatures: linear.inFeatures, outFeatures: linear.outFeatures)
    }

    /// `map`'s float weight in `layer`, [out, in] row-major.
    public func weight(layer: Int, map: EncoderMap) -> [Float] {
        (layers[layer][map] as! Linear).weight
    }
}
