import Yams

/// `init: {method, svd, seed, oversampling, power_iterations, from, quantiser, iterations,
/// tolerance, sweeps, residual}` (DESIGN §3).
/// Every key is optional; `method` defaults to `zero`.
enum InitParser {
    static let keys = ["method", "svd", "seed", "oversampling", "power_iterations", "from", "quantiser", "iterations",
                       "tolerance", "sweeps", "residual"]

    static func parse(_ entry: NodeReader.Entry, reader: inout NodeReader,
                      locations: inout [String: SourceLocation]) -> InitSettings? {
        guard let entries = reader.mapping(entry.value, at: entry.valueLocation, what: "'init'", prefix: "init.",
                                           allowed: keys) else { return nil }
        for (key, e) in entries { locations["init.\(key)"] = e.keyLocation }
        var settings = InitSettings()
        if let e = entries["method"], let method = reader.choice(e, as: InitMethod.self) { settings.method = method }
        if let e = entries["svd"] { settings.svd = reader.choice(e, as: SVDAlgorithm.self) }
        if let e = entries["seed"] { settings.seed = seed(e, reader: &reader) }
        if let e = entries["oversampling"] { settings.oversampling = reader.int(e) }
        if let e = entries["power_iterations"] { settings.powerIterations = reader.int(e) }
        if let e = entries["from"] { settings.from = from(e, reader: &reader, locations: &locations) }
        if let e = entries["quantiser"] { settings.quantiser = quantiser(e, reader: &reader, locations: &locations) }
        if let e = entries["iterations"] { settings.iterations = reader.int(e) }
        if let e = entries["tolerance"] { settings.tolerance = reader.number(e) }
        if let e = entries["sweeps"] { settings.sweeps = reader.int(e) }
        if let e = entries["residual"] { settings.residual = reader.bool(e) }
        return settings
    }

    /// `quantiser: {bits: 4 | 8, group: 64, kind: symmetric | nf4}`; values are checked by InitRules.
    private static func quantiser(_ entry: NodeReader.Entry, reader: inout NodeReader,
                                  locations: inout [String: SourceLocation]) -> QuantiserSettings? {
        guard let entries = reader.mapping(entry.value, at: entry.valueLocation, what: "'init.quantiser'",
                                           prefix: "init.quantiser.", allowed: ["bits", "group", "kind"]) else { return nil }
        for (key, e) in entries { locations["init.quantiser.\(key)"] = e.keyLocation }
        var settings = QuantiserSettings()
        if let e = entries["bits"] { settings.bits = reader.int(e) }
        if let e = entries["group"] { settings.group = reader.int(e) }
        if let e = entries["kind"] { settings.kind = reader.choice(e, as: QuantiserSettings.Kind.self) }
        return settings
    }

    /// Any integer in 0...UInt64.max.
    private static func seed(_ entry: NodeReader.Entry, reader: inout NodeReader) -> UInt64? {
        if case .scalar(let scalar) = entry.value {
            switch YAMLScalar(scalar) {
            case .int(let value) where value >= 0: return UInt64(value)
            case .intOutOfRange(let text): if let value = UInt64(text) { return value }
            default: break
            }
        }
        reader.error("\(entry.what) must be a non-negative integer below 2^64, found \(reader.found(entry.value))",
                     at: entry.valueLocation)
        return nil
    }

    /// `from: [a.safetensors, peft_dir/]`; a single path may be written without the list.
    private static func from(_ entry: NodeReader.Entry, reader: inout NodeReader,
                             locations: inout [String: SourceLocation]) -> [String] {
        switch entry.value {
        case .scalar:
            guard let path = reader.string(entry) else { return [] }
            locations["init.from[0]"] = entry.valueLocation
            return [path]
        case .sequence:
            break
        default:
            reader.error("\(entry.what) must be a list of paths, found \(reader.found(entry.value))",
                         at: entry.valueLocation)
            return []
        }
        guard let paths = reader.stringList(entry) else { return [] }
        for (i, path) in paths.enumerated() { locations["init.from[\(i)]"] = path.location }
        return paths.map(\.value)
    }
}
