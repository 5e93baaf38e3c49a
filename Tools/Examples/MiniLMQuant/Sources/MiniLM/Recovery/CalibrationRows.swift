import AdaptRuntime

/// The calibration rows `adaptc prune` measures an adapter on (DESIGN §4: a
/// safetensors file keyed `LAYER.MODULE`, rows `[n, in]`): the input of each
/// adapted map as the adapted int4 model produces it, recorded while the
/// adapter is applied (so each later map sees what the deployed model feeds it).
public final class CalibrationRows<Adapter: GeneratedAdapter>: MapObserver {
    public let application: AdapterApplication<Adapter>
    /// Rows by `LAYER.MODULE`, concatenated over the batches seen.
    public private(set) var rows: [String: (x: [Float], inFeatures: Int)] = [:]

    public init(_ adapter: Adapter, _ binding: AdapterBinding<Adapter>) {
        application = AdapterApplication(adapter, binding)
    }

    public func mapped(layer: Int, map: EncoderMap, linear: any LinearMap, rows count: Int, input: UnsafePointer<Float>,
                       output: UnsafeMutablePointer<Float>) throws {
        if application.binding.modules[map] != nil {
            let key = Self.key(layer: layer, map: map)
            rows[key, default: ([], linear.inFeatures)].x.append(contentsOf: UnsafeBufferPointer(start: input, count: count * linear.inFeatures))
        }
        try application.mapped(layer: layer, map: map, linear: linear, rows: count, input: input, output: output)
    }

    public static func key(layer: Int, map: EncoderMap) -> String { "\(layer).\(map.rawValue)" }

    /// The rows as the calibration file `adaptc prune --calib` reads.
    public func file() -> SafetensorsWriter {
        var writer = SafetensorsWriter()
        for key in rows.keys.sorted() {
            let (x, inFeatures) = rows[key]!
            writer.add(key, floats: x, shape: [x.count / inFeatures, inFeatures])
        }
        return writer
    }
}

extension EncoderWeights {
    /// `maps` of every layer as a safetensors file keyed as the checkpoint
    /// (`encoder.layer.L.MAP.weight`, `[out, in]`): the quantised base an
    /// adapter was trained on, kept beside it.
    public func baseFile(maps: [EncoderMap]) -> SafetensorsWriter {
        var writer = SafetensorsWriter()
        for layer in layers.indices {
            for map in maps {
                let linear = layers[layer][map]
                writer.add(Self.checkpointKey(layer: layer, map: map), floats: weight(layer: layer, map: map),
                           shape: [linear.outFeatures, linear.inFeatures])
            }
        }
        return writer
    }

    /// The same encoder with the maps `file` holds (`baseFile`) replaced by its weights.
    public func replacing(from file: SafetensorsFile) throws -> EncoderWeights {
        var result = self
        for entry in file.tensors {
            guard let (layer, map) = Self.pair(ofCheckpointKey: entry.name), layer < layers.count,
                  entry.shape == [layers[layer][map].outFeatures, layers[layer][map].inFeatures]
            else { throw CheckpointError("\(file.path): tensor \(entry.name) \(entry.shape) is not a weight of this encoder") }
            result.replace(layer: layer, map: map, weight: try file.floats(entry.name))
        }
        return result
    }

    public static func checkpointKey(layer: Int, map: EncoderMap) -> String { "encoder.layer.\(layer).\(map.rawValue).weight" }

    static func pair(ofCheckpointKey key: String) -> (Int, EncoderMap)? {
        let parts = key.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count >= 5, parts[0] == "encoder", parts[1] == "layer", let layer = Int(parts[2]), parts.last == "weight",
              let map = EncoderMap(rawValue: parts[3..<parts.count - 1].joined(separator: "."))
        else { return nil }
        return (layer, map)
    }
}
