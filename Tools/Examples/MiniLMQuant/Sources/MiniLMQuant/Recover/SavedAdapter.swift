import AdaptRuntime
import Foundation
import MiniLM

/// What `recover --save DIR` keeps of each trained adapter, for `adaptc
/// prune` and for `MiniLMQuant pruned` to score the result on the same base:
///
///     DIR/STEM.safetensors              the adapter (adaptc layout, the spec's hash)
///     DIR/STEM.calibration.safetensors  calibration rows, keyed LAYER.MODULE, [n, in] (DESIGN §4)
///     DIR/STEM.base.safetensors         the quantised weights of the adapted maps it was trained on
///     DIR/STEM.json                     its table row's name and training seconds
///
/// STEM is the spec's file stem (`Sources/MiniLMQuant/STEM.adapt.yaml`), which
/// is also what `adaptc prune` names its output by.
enum SavedAdapter {
    struct Summary: Codable {
        var name: String
        var parameters: Int
        var seconds: Double
    }

    /// Every k-th training sentence, `count` of them: spread over all the training texts.
    static func calibrationSentences(_ training: [[Int32]], count: Int) -> [[Int32]] {
        let step = max(1, training.count / max(count, 1))
        return Array(stride(from: 0, to: training.count, by: step).prefix(count).map { training[$0] })
    }

    static func save<Adapter: GeneratedAdapter>(_ adapter: Adapter, _ binding: AdapterBinding<Adapter>, name: String,
                                                seconds: Double, base: EncoderWeights, quantised: Encoder,
                                                calibration sentences: [[Int32]], batch: Int, to folder: String,
                                                stem: String) throws {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let path = (folder as NSString).appendingPathComponent(stem)
        let rows = CalibrationRows(adapter, binding)
        for part in Recover.batches(sentences, batch) { _ = try quantised.embed(part, observer: rows) }
        try rows.file().write(to: path + ".calibration.safetensors")
        try base.baseFile(maps: binding.maps).write(to: path + ".base.safetensors")
        try adapter.save(to: path + ".safetensors")
        let summary = Summary(name: name, parameters: Adapter.parameterCount, seconds: seconds)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        try AtomicFile.write(String(decoding: try encoder.encode(summary), as: UTF8.self) + "\n", to: path + ".json")
        Recover.report("\(Adapter.specName): saved \(path).safetensors, .calibration.safetensors "
                       + "(\(rows.rows.values.first.map { $0.x.count / $0.inFeatures } ?? 0) rows a pair), .base.safetensors, .json")
    }

    static func summary(_ folder: String, stem: String) throws -> Summary {
        let path = (folder as NSString).appendingPathComponent(stem + ".json")
        guard let data = FileManager.default.contents(atPath: path) else {
            throw CheckpointError("\(path): missing; run `MiniLMQuant recover --save \(folder)` first")
        }
        return try JSONDecoder().decode(Summary.self, from: data)
    }
}
