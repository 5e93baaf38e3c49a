import Yams

/// Parse stage: `*.adapt.yaml` text → AdapterSpec (DESIGN §5).
///
/// Parse checks the file's shape — YAML syntax, known keys, required keys, the
/// type of every value — and records where each key was written; what values
/// mean together (ranges, names, shapes, ranks) is Check's job (SpecChecker).
/// It reports every problem it finds, not just the first.
///
/// Defaults for keys a file leaves out (the same as PEFT's where it has one):
/// - group `layers`: `all` (every layer of the model);
/// - `scaling`: `standard` (s = alpha / r);
/// - `shared`: `false`;
/// - `dora`: `false` (plain LoRA);
/// - `init`: `{method: zero}`, seed, SVD algorithm and its parameters unset
///   (`adaptc init` picks them);
/// - `order`: unset, meaning `[layer, module, out…, in…]` (Check resolves it);
/// - `alpha`: unset, meaning s = 1;
/// - `prune`: `{threshold: 0.9, levels: [layer, rank], scope: pair}`;
/// - `codegen`: `{tokens: dynamic, access: public}`;
/// - `model.weights`: unset (only `init`, `merge` and `export-peft` need it);
/// - `model.tasks` and a group's `tasks`: unset (one task, no `task` mode);
///   with `tasks`, `order` defaults to `[task, layer, module, out…, in…]`;
/// - `train`: unset, meaning every core or factor learns.
///
/// Locations: `AdapterSpec.keyLocations` holds the top-level keys and, as dotted
/// paths, the keys below `model`, `prune` and `codegen` (`model.layers`,
/// `prune.threshold`, `model.modules.NAME` …); `model.modules.NAME[0]`/`[1]` are
/// the out and in values. `AdapterGroup.keyLocations` holds the group's keys,
/// nested keys as dotted paths (`init.method`, `factor.out`,
/// `overrides.3.query.rank`) and list elements as `KEY[i]` (`layers[2]`,
/// `modules[0]`, `order[1]`, `ranks[0]`, `factor.out[1]`, `init.from[0]`,
/// `tasks[0]`, `train[0]`; `model.tasks[i]` on the spec); a
/// tucker `ranks:` entry is `ranks.MODE`.
public enum SpecParser {
    public static func parse(source: String, path: String) -> (AdapterSpec?, [Diagnostic]) {
        let start = SourceLocation(path: path, line: 1, column: 1)
        let root: Node?
        do {
            root = try Yams.compose(yaml: source)
        } catch {
            return (nil, [YAMLSyntaxError.diagnostic(for: error, source: source, path: path)])
        }
        guard let root else {
            return (nil, [Diagnostic(.error, at: start,
                                     "the spec is empty; it needs at least 'adaptc: 1', 'name', 'model' and 'adapters'")])
        }
        var reader = NodeReader(path: path)
        guard case .mapping = root else {
            reader.error("a spec is a mapping of keys ('adaptc', 'name', 'model', 'adapters', …), found \(reader.found(root))",
                         at: reader.location(of: root, or: start))
            return (nil, reader.diagnostics.sorted)
        }
        let spec = parseDocument(root, at: reader.location(of: root, or: start), reader: &reader)
        let diagnostics = reader.diagnostics
        return (diagnostics.hasErrors ? nil : spec, diagnostics.sorted)
    }

    static let topLevelKeys = ["adaptc", "name", "model", "adapters", "prune", "codegen"]

    private static func parseDocument(_ root: Node, at location: SourceLocation,
                                      reader: inout NodeReader) -> AdapterSpec? {
        guard let entries = reader.mapping(root, at: location, what: "the spec", allowed: topLevelKeys,
                                           required: ["adaptc", "name", "model", "adapters"]) else { return nil }
        var keyLocations = entries.mapValues(\.keyLocation)

        let version = entries["adaptc"].flatMap { reader.int($0) }
        let name = entries["name"].flatMap { reader.string($0) }
        // The model comes first: `layers: all` in a group needs model.layers.
        let model = entries["model"].flatMap { ModelParser.parse($0, reader: &reader, keyLocations: &keyLocations) }
        var groups: [AdapterGroup]?
        if let adapters = entries["adapters"], let items = reader.list(adapters) {
            let parser = GroupParser(modelLayers: model?.layers)
            groups = items.compactMap { parser.parse($0, around: adapters.valueLocation, reader: &reader) }
        }
        let prune = entries["prune"].map { SettingsParser.prune($0, reader: &reader, keyLocations: &keyLocations) }
        let codegen = entries["codegen"].map { SettingsParser.codegen($0, reader: &reader, keyLocations: &keyLocations) }

        guard let version, let name, let model, let groups else { return nil }
        return AdapterSpec(path: reader.path, version: version, name: name, model: model, groups: groups,
                           prune: prune ?? PruneSettings(), codegen: codegen ?? CodegenSettings(),
                           location: location, keyLocations: keyLocations)
    }
}
