import AdaptRuntime
import Foundation

/// A BERT checkpoint folder of the real layout with tiny shapes (hidden 4, 2
/// heads, 1 layer, FFN 8, 7 tokens), for the load errors.
enum TinyCheckpoint {
    static let vocabulary = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b"]
    static let config = """
        {"hidden_size": 4, "num_attention_heads": 2, "num_hidden_layers": 1, "intermediate_size": 8,
         "vocab_size": 7, "max_position_embeddings": 16, "type_vocab_size": 2, "layer_norm_eps": 1e-12,
         "hidden_act": "gelu", "position_embedding_type": "absolute"}
        """

    /// Every tensor the encoder reads, with its shape.
    static var tensors: [(String, [Int])] {
        var tensors: [(String, [Int])] = [
            ("embeddings.word_embeddings.weight", [7, 4]), ("embeddings.position_embeddings.weight", [16, 4]),
            ("embeddings.token_type_embeddings.weight", [2, 4]),
            ("embeddings.LayerNorm.weight", [4]), ("embeddings.LayerNorm.bias", [4]),
        ]
        let p = "encoder.layer.0."
        for (name, out, inFeatures) in [("attention.self.query", 4, 4), ("attention.self.key", 4, 4), ("attention.self.value", 4, 4),
                                        ("attention.output.dense", 4, 4), ("intermediate.dense", 8, 4), ("output.dense", 4, 8)] {
            tensors += [(p + name + ".weight", [out, inFeatures]), (p + name + ".bias", [out])]
        }
        for norm in ["attention.output.LayerNorm", "output.LayerNorm"] {
            tensors += [(p + norm + ".weight", [4]), (p + norm + ".bias", [4])]
        }
        return tensors
    }

    /// Writes the folder, leaving out `omitting` (a tensor name, or "vocab.txt").
    static func write(to folder: String, omitting: String? = nil) throws {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        try config.write(toFile: folder + "/config.json", atomically: true, encoding: .utf8)
        if omitting != "vocab.txt" {
            try (vocabulary.joined(separator: "\n") + "\n").write(toFile: folder + "/vocab.txt", atomically: true, encoding: .utf8)
        }
        var writer = SafetensorsWriter()
        for (index, (name, shape)) in tensors.enumerated() where name != omitting {
            let count = shape.reduce(1, *)
            writer.add(name, floats: (0..<count).map { Float(($0 * 7 + index) % 11) / 11 - 0.5 }, shape: shape)
        }
        try writer.write(to: folder + "/model.safetensors")
    }

    static func temporaryFolder() -> String {
        NSTemporaryDirectory() + "minilm-test-" + UUID().uuidString
    }
}
