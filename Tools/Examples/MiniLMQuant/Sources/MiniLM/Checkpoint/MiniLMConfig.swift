import Foundation

/// The shape of a BERT encoder, from the checkpoint's `config.json`.
public struct MiniLMConfig: Sendable, Equatable {
    public var hidden: Int
    public var heads: Int
    public var layers: Int
    public var intermediate: Int
    public var vocabularySize: Int
    public var maximumPositions: Int
    public var tokenTypes: Int
    public var layerNormEpsilon: Float

    public var headSize: Int { hidden / heads }

    /// Reads `config.json`; only BERT with the erf GELU and absolute positions is accepted.
    public static func read(path: String) throws -> MiniLMConfig {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw CheckpointError("\(path): cannot read the model config (missing or unreadable)")
        }
        guard let object = try? JSONSerialization.jsonObject(with: data), let json = object as? [String: Any] else {
            throw CheckpointError("\(path): not a JSON object")
        }
        func integer(_ key: String) throws -> Int {
            guard let value = json[key] as? NSNumber, let int = Int(exactly: value.doubleValue), int > 0 else {
                throw CheckpointError("\(path): \(key) must be a positive integer")
            }
            return int
        }
        func string(_ key: String, default fallback: String) -> String { json[key] as? String ?? fallback }
        guard string("hidden_act", default: "gelu") == "gelu" else {
            throw CheckpointError("\(path): hidden_act \(string("hidden_act", default: "")) is not supported (only gelu, the erf form)")
        }
        guard string("position_embedding_type", default: "absolute") == "absolute" else {
            throw CheckpointError("\(path): only absolute position embeddings are supported")
        }
        guard let epsilon = (json["layer_norm_eps"] as? NSNumber)?.floatValue, epsilon > 0 else {
            throw CheckpointError("\(path): layer_norm_eps must be a positive number")
        }
        let config = MiniLMConfig(
            hidden: try integer("hidden_size"), heads: try integer("num_attention_heads"),
            layers: try integer("num_hidden_layers"), intermediate: try integer("intermediate_size"),
            vocabularySize: try integer("vocab_size"), maximumPositions: try integer("max_position_embeddings"),
            tokenTypes: try integer("type_vocab_size"), layerNormEpsilon: epsilon)
        guard config.hidden % config.heads == 0 else {
            throw CheckpointError("\(path): hidden_size \(config.hidden) is not a multiple of num_attention_heads \(config.heads)")
        }
        return config
    }
}
