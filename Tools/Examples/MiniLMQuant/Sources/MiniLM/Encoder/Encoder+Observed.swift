import AdaptRuntime

/// Sees every linear map's input and output as the encoder runs, and may add
/// to the output before the encoder goes on: an adapter's `y +=` (the
/// quantised model plus its adapter), or a training step on the map's inputs
/// (activation regression towards the float model).
public protocol MapObserver: AnyObject {
    /// `output` [rows, out] = `input` [rows, in]·Wᵀ + b of `map` in `layer`, all
    /// of the batch's token rows (`linear` says in and out); called once per
    /// map, from one thread.
    func mapped(layer: Int, map: EncoderMap, linear: any LinearMap, rows: Int, input: UnsafePointer<Float>,
                output: UnsafeMutablePointer<Float>) throws
}

extension Encoder {
    /// `embed(_:)` with `observer` called after each linear map. The maps run
    /// one at a time over all token rows (each split across the threads), so
    /// an observer works on whole matrices; `embed(_:)` fuses a layer's
    /// row-local work per block instead and is faster. The embeddings are the
    /// same to rounding (the same products, in another grouping of rows).
    public func embed(_ sentences: [[Int32]], observer: MapObserver) throws -> [[Float]] {
        if sentences.isEmpty { return [] }
        let batch = pack(sentences)
        let rows = batch.starts.last!, h = config.hidden, f = config.intermediate
        let x = workspace.hiddenStates!, sublayer = workspace.sublayerOutput!, intermediate = workspace.intermediate!
        forEachRowBlock(rows) { embedTokens(batch, $0) }
        for (layer, weights) in weights.layers.enumerated() {
            func apply(_ map: EncoderMap, _ input: UnsafePointer<Float>, _ output: UnsafeMutablePointer<Float>) throws {
                let linear = weights[map]
                forEachRowBlock(rows) { block in
                    linear.apply(rows: block.count, input: input + block.lowerBound * linear.inFeatures,
                                 output: output + block.lowerBound * linear.outFeatures)
                }
                try observer.mapped(layer: layer, map: map, linear: linear, rows: rows, input: input, output: output)
            }
            try apply(.query, x, workspace.queries)
            try apply(.key, x, workspace.keys)
            try apply(.value, x, workspace.values)
            attend(batch)
            try apply(.attentionOutput, workspace.context, sublayer)
            forEachRowBlock(rows) { block in
                addResidualAndNormalize(weights.attentionNorm, block.count, sublayer + block.lowerBound * h,
                                        into: x + block.lowerBound * h)
            }
            try apply(.intermediate, x, intermediate)
            forEachRowBlock(rows) { block in VectorMath.gelu(intermediate + block.lowerBound * f, block.count * f) }
            try apply(.output, intermediate, sublayer)
            forEachRowBlock(rows) { block in
                addResidualAndNormalize(weights.outputNorm, block.count, sublayer + block.lowerBound * h,
                                        into: x + block.lowerBound * h)
            }
        }
        return pool(batch)
    }
}
