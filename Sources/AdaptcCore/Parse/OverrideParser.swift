import Yams

/// `overrides: {"LAYER.MODULE": {rank: R, alpha: A}}` — PEFT's `rank_pattern` and
/// `alpha_pattern` for single pairs. The module part may itself be dotted
/// (`"3.attention.self.query"`): the layer is everything before the first dot.
enum OverrideParser {
    static let keys = ["rank", "alpha"]

    static func parse(_ entry: NodeReader.Entry, reader: inout NodeReader,
                      locations: inout [String: SourceLocation]) -> [PairOverride]? {
        guard let entries = reader.entries(of: entry.value, at: entry.valueLocation, what: "'overrides'",
                                           prefix: "overrides.") else { return nil }
        var overrides: [PairOverride] = []
        for pair in entries {
            guard let (layer, module) = pairKey(pair.key) else {
                reader.error("override key '\(pair.key)' must be LAYER.MODULE, such as '3.query'", at: pair.keyLocation)
                continue
            }
            // Locations use the canonical key, so `03.query` is found as `3.query`.
            let prefix = "overrides.\(layer).\(module)."
            guard let values = reader.mapping(pair.value, at: pair.valueLocation, what: "override '\(pair.key)'",
                                              prefix: prefix, allowed: keys) else { continue }
            for (key, e) in values { locations[prefix + key] = e.keyLocation }
            overrides.append(PairOverride(layer: layer, module: module,
                                          rank: values["rank"].flatMap { reader.int($0) },
                                          alpha: values["alpha"].flatMap { reader.number($0) },
                                          location: pair.keyLocation))
        }
        return overrides
    }

    /// `"3.query"` → (3, "query"); nil unless a decimal layer, a dot and a non-empty module.
    static func pairKey(_ key: String) -> (layer: Int, module: String)? {
        guard let dot = key.firstIndex(of: ".") else { return nil }
        let layerText = key[..<dot], module = String(key[key.index(after: dot)...])
        guard !layerText.isEmpty, layerText.allSatisfy({ $0.isASCII && $0.isNumber }),
              let layer = Int(layerText), !module.isEmpty else { return nil }
        return (layer, module)
    }
}
