import AdaptRuntime
import Foundation

/// A BERT checkpoint folder as Hugging Face lays it out (`Tools/fetch-minilm`):
/// `config.json`, `vocab.txt`, `model.safetensors`. Everything is checked on
/// load: a missing file or tensor, a wrong shape or a truncated file is a
/// `CheckpointError` or `SafetensorsError` naming the file.
public struct Checkpoint: Sendable {
    public let folder: String
    public let config: MiniLMConfig
    public let vocabulary: Vocabulary
    public let weights: EncoderWeights

    public static func load(folder: String, threads: Int = 1) throws -> Checkpoint {
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: folder, isDirectory: &isFolder), isFolder.boolValue else {
            throw CheckpointError("\(folder): no such checkpoint folder (Tools/fetch-minilm fetches all-MiniLM-L6-v2)")
        }
        let config = try MiniLMConfig.read(path: folder + "/config.json")
        let vocabulary = try Vocabulary.read(path: folder + "/vocab.txt")
        guard vocabulary.count == config.vocabularySize else {
            throw CheckpointError("\(folder)/vocab.txt: \(vocabulary.count) tokens, but config.json says vocab_size \(config.vocabularySize)")
        }
        let file = try SafetensorsFile.read(path: folder + "/model.safetensors")
        let weights = try TensorReader(file: file, threads: threads).encoderWeights(config)
        return Checkpoint(folder: folder, config: config, vocabulary: vocabulary, weights: weights)
    }
}

/// Reads the named tensors of `model.safetensors`, checking each one's shape.
struct TensorReader {
    let file: SafetensorsFile
    let threads: Int

    func tensor(_ name: String, _ shape: [Int]) throws -> [Float] {
        guard let entry = file.entry(name) else {
            throw CheckpointError("\(file.path): missing tensor '\(name)'")
        }
        guard entry.shape == shape else {
            throw CheckpointError("\(file.path): tensor '\(name)' has shape \(entry.shape), expected \(shape)")
        }
        return try [Float](unsafeUninitializedCapacity: entry.elementCount) { buffer, initialized in
            try file.floats(entry, into: buffer, threads: threads)
            initialized = entry.elementCount
        }
    }

    func linear(_ prefix: String, in inFeatures: Int, out outFeatures: Int) throws -> Linear {
        Linear(weight: try tensor(prefix + ".weight", [outFeatures, inFeatures]),
               bias: try tensor(prefix + ".bias", [outFeatures]),
               inFeatures: inFeatures, outFeatures: outFeatures)
    }

    func layerNorm(_ prefix: String, _ width: Int, epsilon: Float) throws -> LayerNorm {
        LayerNorm(gamma: try tensor(prefix + ".weight", [width]), beta: try tensor(prefix + ".bias", [width]), epsilon: epsilon)
    }

    func encoderWeights(_ config: MiniLMConfig) throws -> EncoderWeights {
        let h = config.hidden, f = config.intermediate, eps = config.layerNormEpsilon
        let embeddings = Embeddings(
            words: try tensor("embeddings.word_embeddings.weight", [config.vocabularySize, h]),
            positions: try tensor("embeddings.position_embeddings.weight", [config.maximumPositions, h]),
            tokenTypes: try tensor("embeddings.token_type_embeddings.weight", [config.tokenTypes, h]),
            norm: try layerNorm("embeddings.LayerNorm", h, epsilon: eps))
        let layers = try (0..<config.layers).map { layer in
            let p = "encoder.layer.\(layer)."
            return EncoderLayer(
                query: try linear(p + "attention.self.query", in: h, out: h),
                key: try linear(p + "attention.self.key", in: h, out: h),
                value: try linear(p + "attention.self.value", in: h, out: h),
                attentionOutput: try linear(p + "attention.output.dense", in: h, out: h),
                attentionNorm: try layerNorm(p + "attention.output.LayerNorm", h, epsilon: eps),
                intermediate: try linear(p + "intermediate.dense", in: h, out: f),
                output: try linear(p + "output.dense", in: f, out: h),
                outputNorm: try layerNorm(p + "output.LayerNorm", h, epsilon: eps))
        }
        return EncoderWeights(config: config, embeddings: embeddings, layers: layers)
    }
}
