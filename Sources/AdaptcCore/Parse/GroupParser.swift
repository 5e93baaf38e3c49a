import Yams

/// One entry of `adapters:` → AdapterGroup. Keys and their defaults are listed
/// on SpecParser; locations go to `AdapterGroup.keyLocations`.
struct GroupParser {
    static let keys = ["name", "structure", "layers", "modules", "factor", "order", "rank", "ranks",
                       "alpha", "scaling", "shared", "dora", "init", "overrides", "tasks", "train"]
    static let factorKeys = ["out", "in"]

    /// model.layers, to expand `layers: all`; nil when the model did not parse.
    let modelLayers: Int?

    /// The group, or nil when any of its values is malformed (errors recorded).
    func parse(_ node: Node, around listLocation: SourceLocation, reader: inout NodeReader) -> AdapterGroup? {
        let location = reader.location(of: node, or: listLocation)
        let errorsBefore = reader.diagnostics.diagnostics.count
        // Name the group in messages when it has a readable name.
        let what = node.mapping?["name"]?.string.map { "adapter group '\($0)'" } ?? "adapter group"
        guard let entries = reader.mapping(node, at: location, what: what, allowed: Self.keys,
                                           required: ["name", "structure", "modules"]) else { return nil }
        var locations = entries.mapValues(\.keyLocation)

        let name = entries["name"].flatMap { reader.string($0) }
        let structure = entries["structure"].flatMap { reader.choice($0, as: Structure.self) }

        var layers = LayerSelection.all(modelLayers: modelLayers)
        if let entry = entries["layers"],
           let selected = LayerSelection.parse(entry, modelLayers: modelLayers, reader: &reader) {
            layers = selected.map(\.value)
            record(selected.map(\.location), as: "layers", in: &locations)
        }

        var modules: [String] = []
        if let entry = entries["modules"], let names = reader.stringList(entry) {
            modules = names.map(\.value)
            record(names.map(\.location), as: "modules", in: &locations)
        }

        var outFactors: [Int]?, inFactors: [Int]?
        if let entry = entries["factor"],
           let factor = reader.mapping(entry.value, at: entry.valueLocation, what: "'factor'", prefix: "factor.",
                                       allowed: Self.factorKeys) {
            for (side, e) in factor {
                locations["factor.\(side)"] = e.keyLocation
                guard let sizes = reader.intList(e) else { continue }
                record(sizes.map(\.location), as: "factor.\(side)", in: &locations)
                if side == "out" { outFactors = sizes.map(\.value) } else { inFactors = sizes.map(\.value) }
            }
        }

        var order: [ModeName]?
        if let entry = entries["order"], let names = reader.stringList(entry) {
            order = modeNames(names, what: "'order'", reader: &reader)
            record(names.map(\.location), as: "order", in: &locations)
        }

        let rank = RankParser.parse(rank: entries["rank"], ranks: entries["ranks"], reader: &reader,
                                    locations: &locations)
        let alpha = entries["alpha"].flatMap { reader.number($0) }
        let scaling = entries["scaling"].flatMap { reader.choice($0, as: Scaling.self) } ?? .standard
        let shared = entries["shared"].flatMap { reader.bool($0) } ?? false
        let dora = entries["dora"].flatMap { reader.bool($0) } ?? false
        let initialization = entries["init"].flatMap { InitParser.parse($0, reader: &reader, locations: &locations) }
            ?? InitSettings()
        let overrides = entries["overrides"].flatMap { OverrideParser.parse($0, reader: &reader, locations: &locations) }
            ?? []

        let tasks = entries["tasks"].flatMap { taskSelection($0, reader: &reader, locations: &locations) }
        var train: [ModeName]?
        if let entry = entries["train"], let names = reader.stringList(entry) {
            train = modeNames(names, what: "'train'", reader: &reader)
            record(names.map(\.location), as: "train", in: &locations)
        }

        guard reader.diagnostics.diagnostics.count == errorsBefore, let name, let structure else { return nil }
        var group = AdapterGroup(name: name, structure: structure, layers: layers, modules: modules,
                                 outFactors: outFactors, inFactors: inFactors, order: order, rank: rank, alpha: alpha,
                                 scaling: scaling, shared: shared, dora: dora, initialization: initialization, overrides: overrides,
                                 location: location, keyLocations: locations)
        group.tasks = tasks
        group.train = train
        return group
    }

    /// `tasks: all` or a list of task names (Check matches them against model.tasks).
    private func taskSelection(_ entry: NodeReader.Entry, reader: inout NodeReader,
                               locations: inout [String: SourceLocation]) -> TaskSelection? {
        if case .scalar(let scalar) = entry.value, case .string("all") = YAMLScalar(scalar) { return .all }
        guard case .sequence = entry.value else {
            reader.error("'tasks' must be all or a list of task names from 'model.tasks', found \(reader.found(entry.value))",
                         at: entry.valueLocation)
            return nil
        }
        guard let names = reader.stringList(entry) else { return nil }
        for (i, name) in names.enumerated() { locations["tasks[\(i)]"] = name.location }
        return .listed(names.map(\.value))
    }

    /// `KEY[i]` for each element of a list.
    private func record(_ elementLocations: [SourceLocation], as key: String,
                        in locations: inout [String: SourceLocation]) {
        // A range or `all` puts every element at one place: one entry, `KEY[*]`,
        // instead of a million (a far range would otherwise cost seconds).
        if elementLocations.count > 1, let first = elementLocations.first, elementLocations.allSatisfy({ $0 == first }) {
            locations["\(key)[*]"] = first
            return
        }
        for (i, location) in elementLocations.enumerated() { locations["\(key)[\(i)]"] = location }
    }

    /// Mode names (`layer`, `module`, `out`, `in`, `out.K`, `in.K`); unknown ones are errors.
    private func modeNames(_ names: [(value: String, location: SourceLocation)], what: String,
                           reader: inout NodeReader) -> [ModeName]? {
        var modes: [ModeName] = []
        for (text, location) in names {
            if let mode = ModeName(parsing: text) {
                modes.append(mode)
            } else {
                reader.error(RankParser.unknownModeMessage(text, in: what), at: location)
            }
        }
        return modes.count == names.count ? modes : nil
    }
}
