import AdaptRuntime

/// The BERT encoder forward (Devlin et al. 2019; post-LayerNorm) and
/// sentence-transformers' pooling: token embeddings → `layers` × (multi-head
/// self-attention, residual, LayerNorm, GELU feed-forward, residual,
/// LayerNorm) → mean over each sentence's tokens → L2 normalisation.
///
/// A batch is packed: the sentences' tokens are stacked one after another, with
/// no padding rows, and attention runs over each sentence's own tokens. That is
/// the padding mask done exactly: a masked key's weight e^(-∞) is 0, so padded
/// rows change nothing in a padded batch but cost its GEMMs their time.
/// Row-local work (embeddings, the linear maps, LayerNorm, GELU) runs on blocks
/// of rows, attention on (sentence, head) pairs, both across `threads` (TBB).
public final class Encoder {
    public let weights: EncoderWeights
    public let threads: Int
    let workspace = Workspace()
    /// Rows per task of the row-local phases. Each GEMM call packs its weight
    /// afresh (OpenBLAS has no pre-packed sgemm): at 64 rows packing took 15% of
    /// the benchmark's time; 256 rows was 5% faster overall (128 to 512 alike).
    static let rowBlock = 256

    public init(weights: EncoderWeights, threads: Int) {
        self.weights = weights
        self.threads = threads
    }

    public var config: MiniLMConfig { weights.config }

    /// Each sentence's embedding (`config.hidden` floats, unit L2 norm). Every
    /// sentence has 1 to `maximumPositions` token ids below the vocabulary size.
    public func embed(_ sentences: [[Int32]]) -> [[Float]] {
        if sentences.isEmpty { return [] }
        let batch = pack(sentences)
        let rows = batch.starts.last!
        forEachRowBlock(rows) { block in
            embedTokens(batch, block)
            projectQueriesKeysValues(layer: 0, block)
        }
        for layer in 0..<weights.layers.count {
            attend(batch)
            forEachRowBlock(rows) { block in
                finishLayer(layer, block)
                if layer + 1 < weights.layers.count { projectQueriesKeysValues(layer: layer + 1, block) }
            }
        }
        return pool(batch)
    }

    /// The sentences' token rows one after another, the workspace grown to hold them.
    func pack(_ sentences: [[Int32]]) -> PackedBatch {
        var starts = [0]
        for ids in sentences {
            precondition(!ids.isEmpty && ids.count <= config.maximumPositions, "a sentence of \(ids.count) tokens")
            starts.append(starts.last! + ids.count)
        }
        workspace.reserve(rows: starts.last!, hidden: config.hidden, intermediate: config.intermediate)
        return PackedBatch(starts: starts, tokens: sentences.flatMap { $0 },
                           positions: sentences.flatMap { 0..<Int32($0.count) })
    }

    struct PackedBatch {
        /// Sentence s has rows starts[s]..<starts[s + 1].
        let starts: [Int]
        let tokens: [Int32]
        let positions: [Int32]
        var sentenceCount: Int { starts.count - 1 }
    }

    func forEachRowBlock(_ rows: Int, _ body: (Range<Int>) -> Void) {
        let blocks = (rows + Self.rowBlock - 1) / Self.rowBlock
        Parallel.forEach(blocks, threads: threads) { range in
            for block in range { body((block * Self.rowBlock)..<min(rows, (block + 1) * Self.rowBlock)) }
        }
    }

    /// x = LayerNorm(word + position + token type 0).
    func embedTokens(_ batch: PackedBatch, _ rows: Range<Int>) {
        let h = config.hidden, e = weights.embeddings
        let x = workspace.hiddenStates!
        e.words.withUnsafeBufferPointer { words in
            e.positions.withUnsafeBufferPointer { positions in
                e.tokenTypes.withUnsafeBufferPointer { types in
                    for row in rows {
                        let word = words.baseAddress! + Int(batch.tokens[row]) * h
                        let position = positions.baseAddress! + Int(batch.positions[row]) * h
                        let out = x + row * h
                        for i in 0..<h { out[i] = word[i] + position[i] + types[i] }
                    }
                }
            }
        }
        e.norm.normalize(rows: rows.count, x + rows.lowerBound * h)
    }

    private func projectQueriesKeysValues(layer: Int, _ rows: Range<Int>) {
        let h = config.hidden, offset = rows.lowerBound * h, w = weights.layers[layer]
        let x = UnsafePointer(workspace.hiddenStates! + offset)
        w.query.apply(rows: rows.count, input: x, output: workspace.queries + offset)
        w.key.apply(rows: rows.count, input: x, output: workspace.keys + offset)
        w.value.apply(rows: rows.count, input: x, output: workspace.values + offset)
    }

    /// context = softmax(Q·Kᵀ/√d)·V for each head of each sentence, over the
    /// sentence's own tokens only.
    func attend(_ batch: PackedBatch) {
        let h = config.hidden, heads = config.heads, d = config.headSize
        let scale = 1 / Float(d).squareRoot()
        let q = workspace.queries!, k = workspace.keys!, v = workspace.values!, context = workspace.context!
        let longest = (0..<batch.sentenceCount).map { batch.starts[$0 + 1] - batch.starts[$0] }.max()!
        Parallel.forEach(batch.sentenceCount * heads, threads: threads) { pairs in
            withUnsafeTemporaryAllocation(of: Float.self, capacity: longest * longest) { scores in
                let scores = scores.baseAddress!
                for pair in pairs {
                    let sentence = pair / heads, head = pair % heads
                    let n = batch.starts[sentence + 1] - batch.starts[sentence]
                    let offset = batch.starts[sentence] * h + head * d
                    BLAS.gemm(transA: false, transB: true, m: n, n: n, k: d, alpha: scale,
                              a: q + offset, lda: h, b: k + offset, ldb: h, beta: 0, c: scores, ldc: n)
                    for row in 0..<n { VectorMath.softmax(scores + row * n, n) }
                    BLAS.gemm(transA: false, transB: false, m: n, n: d, k: n, alpha: 1,
                              a: scores, lda: n, b: v + offset, ldb: h, beta: 0, c: context + offset, ldc: h)
                }
            }
        }
    }

    /// x = LN(x + O(context)); x = LN(x + W₂·GELU(W₁·x)).
    private func finishLayer(_ layer: Int, _ rows: Range<Int>) {
        let h = config.hidden, f = config.intermediate, w = weights.layers[layer]
        let x = workspace.hiddenStates! + rows.lowerBound * h
        let sublayer = workspace.sublayerOutput! + rows.lowerBound * h
        let intermediate = workspace.intermediate! + rows.lowerBound * f
        w.attentionOutput.apply(rows: rows.count, input: workspace.context + rows.lowerBound * h, output: sublayer)
        addResidualAndNormalize(w.attentionNorm, rows.count, sublayer, into: x)
        w.intermediate.apply(rows: rows.count, input: x, output: intermediate)
        VectorMath.gelu(intermediate, rows.count * f)
        w.output.apply(rows: rows.count, input: intermediate, output: sublayer)
        addResidualAndNormalize(w.outputNorm, rows.count, sublayer, into: x)
    }

    /// x = LayerNorm(x + sublayer), row by row.
    func addResidualAndNormalize(_ norm: LayerNorm, _ rows: Int, _ sublayer: UnsafePointer<Float>,
                                         into x: UnsafeMutablePointer<Float>) {
        let count = rows * config.hidden
        for i in 0..<count { x[i] += sublayer[i] }
        norm.normalize(rows: rows, x)
    }

    /// Mean of each sentence's last hidden states (in Double), then unit L2 norm.
    func pool(_ batch: PackedBatch) -> [[Float]] {
        let h = config.hidden, x = workspace.hiddenStates!
        return (0..<batch.sentenceCount).map { sentence in
            var mean = [Double](repeating: 0, count: h)
            let rows = batch.starts[sentence]..<batch.starts[sentence + 1]
            for row in rows {
                for i in 0..<h { mean[i] += Double(x[row * h + i]) }
            }
            let norm = max(mean.reduce(0) { $0 + $1 * $1 }.squareRoot() / Double(rows.count), 1e-12)
            return mean.map { Float($0 / Double(rows.count) / norm) }
        }
    }
}
