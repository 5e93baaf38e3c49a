import AdaptRuntime

/// Keys of PEFT's `adapter_model.safetensors` (DESIGN §5):
/// `base_model.model.PATH.lora_A.weight` [r, in] and `….lora_B.weight` [out, r].
/// PATH splits at the layer index — the first integer component right after
/// `layer`, `layers`, `h` or `blocks` — into PREFIX, LAYER and MODULE.
public struct PEFTModulePath: Hashable, Sendable {
    public var prefix: String
    public var layer: Int
    public var module: String

    public var path: String { "\(prefix).\(layer).\(module)" }

    static let layerContainers: Set<String> = ["layer", "layers", "h", "blocks"]

    public init?(_ path: String) {
        let parts = path.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        for i in 1..<max(parts.count - 1, 1) where Self.layerContainers.contains(parts[i - 1]) {
            guard let layer = Int(parts[i]), layer >= 0, String(layer) == parts[i] else { continue }
            prefix = parts[..<i].joined(separator: ".")
            self.layer = layer
            module = parts[(i + 1)...].joined(separator: ".")
            return
        }
        return nil
    }

    public init(prefix: String, layer: Int, module: String) {
        self.prefix = prefix
        self.layer = layer
        self.module = module
    }
}

enum PEFTKeys {
    static let root = "base_model.model."

    enum Factor: String { case a = "lora_A", b = "lora_B", magnitude = "lora_magnitude_vector" }

    /// The module path and factor a tensor key names, or an error naming the
    /// feature a key belongs to when adaptc does not run it.
    static func parse(_ key: String, file: String) throws -> (path: String, factor: Factor) {
        guard key.hasPrefix(root) else {
            throw UserError("\(file): tensor \"\(key)\": PEFT keys start with \"\(root)\"")
        }
        let rest = String(key.dropFirst(root.count))
        for factor in [Factor.a, .b] where rest.hasSuffix(".\(factor.rawValue).weight") {
            return (String(rest.dropLast(factor.rawValue.count + ".weight".count + 1)), factor)
        }
        // DoRA's m: PEFT ≥ 0.12 saves it without ".weight"; older files have it.
        for suffix in [".lora_magnitude_vector", ".lora_magnitude_vector.weight"] where rest.hasSuffix(suffix) {
            return (String(rest.dropLast(suffix.count)), .magnitude)
        }
        let feature: String
        if rest.contains("lora_embedding") { feature = "LoRA on embeddings (lora_embedding_A/B)" }
        else if rest.hasSuffix(".lora_B.bias") || rest.hasSuffix(".lora_A.bias") { feature = "LoRA biases (lora_bias)" }
        else if rest.hasSuffix(".bias") { feature = "trained biases (bias other than \"none\")" }
        else { feature = "a tensor that is not lora_A/lora_B" }
        throw UserError("\(file): tensor \"\(key)\": \(feature) is not something adaptc runs")
    }

    static func key(_ path: String, _ factor: Factor) -> String {
        factor == .magnitude ? "\(root)\(path).\(factor.rawValue)" : "\(root)\(path).\(factor.rawValue).weight"
    }
}
