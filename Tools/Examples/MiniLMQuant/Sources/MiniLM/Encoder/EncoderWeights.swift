/// One transformer layer of BERT (post-LayerNorm): self-attention with its
/// output map and LayerNorm, then the feed-forward block with its LayerNorm.
public struct EncoderLayer: Sendable {
    public var query: any LinearMap
    public var key: any LinearMap
    public var value: any LinearMap
    public var attentionOutput: any LinearMap
    public var attentionNorm: LayerNorm
    public var intermediate: any LinearMap
    public var output: any LinearMap
    public var outputNorm: LayerNorm

    public init(query: any LinearMap, key: any LinearMap, value: any LinearMap, attentionOutput: any LinearMap,
                attentionNorm: LayerNorm, intermediate: any LinearMap, output: any LinearMap, outputNorm: LayerNorm) {
        self.query = query
        self.key = key
        self.value = value
        self.attentionOutput = attentionOutput
        self.attentionNorm = attentionNorm
        self.intermediate = intermediate
        self.output = output
        self.outputNorm = outputNorm
    }
}

/// Word, position and token-type embeddings, summed and normalised.
public struct Embeddings: Sendable {
    /// [vocabulary, hidden]
    public var words: [Float]
    /// [positions, hidden]
    public var positions: [Float]
    /// [token types, hidden]; every token here is of type 0 (one sentence).
    public var tokenTypes: [Float]
    public var norm: LayerNorm

    public init(words: [Float], positions: [Float], tokenTypes: [Float], norm: LayerNorm) {
        self.words = words
        self.positions = positions
        self.tokenTypes = tokenTypes
        self.norm = norm
    }
}

/// All of the encoder's weights (the pooler is not used: sentence embeddings
/// are the mean of the last hidden states).
public struct EncoderWeights: Sendable {
    public var config: MiniLMConfig
    public var embeddings: Embeddings
    public var layers: [EncoderLayer]

    public init(config: MiniLMConfig, embeddings: Embeddings, layers: [EncoderLayer]) {
        self.config = config
        self.embeddings = embeddings
        self.layers = layers
    }
}
