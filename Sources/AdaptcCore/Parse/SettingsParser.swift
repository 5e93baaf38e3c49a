import Yams

/// `prune:` and `codegen:` — spec-wide settings with defaults (PruneSettings,
/// CodegenSettings). Malformed values are reported and the default kept.
enum SettingsParser {
    static let pruneKeys = ["threshold", "levels", "scope"]
    static let codegenKeys = ["tokens", "access"]

    /// `prune: {threshold: 0.9, levels: [layer, rank], scope: pair}` (DESIGN §4).
    static func prune(_ entry: NodeReader.Entry, reader: inout NodeReader,
                      keyLocations: inout [String: SourceLocation]) -> PruneSettings {
        var settings = PruneSettings()
        guard let entries = reader.mapping(entry.value, at: entry.valueLocation, what: "'prune'", prefix: "prune.",
                                           allowed: pruneKeys) else { return settings }
        for (key, e) in entries { keyLocations["prune.\(key)"] = e.keyLocation }
        if let e = entries["threshold"], let threshold = reader.number(e) { settings.threshold = threshold }
        if let e = entries["levels"], let nodes = reader.list(e) {
            var levels: [PruneLevel] = []
            for (i, node) in nodes.enumerated() {
                let location = reader.location(of: node, or: e.valueLocation)
                keyLocations["prune.levels[\(i)]"] = location
                if let level = reader.choice(node, at: location, what: "each entry of 'prune.levels'",
                                             as: PruneLevel.self) {
                    levels.append(level)
                }
            }
            settings.levels = levels
        }
        if let e = entries["scope"], let scope = reader.choice(e, as: PruneScope.self) { settings.scope = scope }
        return settings
    }

    /// `codegen: {tokens: dynamic | N, access: public | internal}` (DESIGN §6).
    static func codegen(_ entry: NodeReader.Entry, reader: inout NodeReader,
                        keyLocations: inout [String: SourceLocation]) -> CodegenSettings {
        var settings = CodegenSettings()
        guard let entries = reader.mapping(entry.value, at: entry.valueLocation, what: "'codegen'",
                                           prefix: "codegen.", allowed: codegenKeys) else { return settings }
        for (key, e) in entries { keyLocations["codegen.\(key)"] = e.keyLocation }
        if let e = entries["tokens"] {
            if case .scalar(let scalar) = e.value, case .string("dynamic") = YAMLScalar(scalar) {
                settings.tokens = .dynamic
            } else if case .scalar(let scalar) = e.value, case .int(let n) = YAMLScalar(scalar) {
                settings.tokens = .fixed(n)
            } else {
                reader.error("\(e.what) must be dynamic or a number of token rows, found \(reader.found(e.value))",
                             at: e.valueLocation)
            }
        }
        if let e = entries["access"] {
            switch e.value {
            case .scalar(let scalar) where YAMLScalar(scalar) == .string("public"): settings.access = .public
            case .scalar(let scalar) where YAMLScalar(scalar) == .string("internal"): settings.access = .internal
            default:
                let text = e.value.scalar.map(\.string) ?? ""
                reader.error("\(e.what) must be public or internal, found \(reader.found(e.value))"
                             + DidYouMean.hint(for: text, among: ["public", "internal"]), at: e.valueLocation)
            }
        }
        return settings
    }
}
