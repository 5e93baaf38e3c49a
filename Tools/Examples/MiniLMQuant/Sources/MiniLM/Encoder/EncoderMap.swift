/// The six linear maps of one BERT layer, named as the checkpoint names them
/// below `encoder.layer.{L}.` (and as adapter specs name their modules).
public enum EncoderMap: String, CaseIterable, Sendable {
    case query = "attention.self.query"
    case key = "attention.self.key"
    case value = "attention.self.value"
    case attentionOutput = "attention.output.dense"
    case intermediate = "intermediate.dense"
    case output = "output.dense"

    /// The attention projections q, k, v and o: what adapters usually target.
    public static let attention: [EncoderMap] = [.query, .key, .value, .attentionOutput]
}

extension EncoderLayer {
    public subscript(map: EncoderMap) -> any LinearMap {
        get {
            switch map {
            case .query: query
            case .key: key
            case .value: value
            case .attentionOutput: attentionOutput
            case .intermediate: intermediate
            case .output: output
            }
        }
        set {
            switch map {
            case .query: query = newValue
            case .key: key = newValue
            case .value: value = newValue
            case .attentionOutput: attentionOutput = newValue
            case .intermediate: intermediate = newValue
            case .output: output = newValue
            }
        }
    }
}
