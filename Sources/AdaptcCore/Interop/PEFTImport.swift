import AdaptRuntime
import Foundation

/// `adaptc import-peft`: a PEFT LoRA folder → an adaptc spec and adapter file
/// (DESIGN §5). Layer count and shapes come from the tensors (or `--base`),
/// ranks and scales from the config alone; a config that disagrees with its
/// tensors is an error, as is any PEFT feature adaptc does not run.
public enum PEFTImport {
    public struct Result {
        /// The spec's YAML text.
        public var spec: String
        public var checked: CheckedSpec
        public var adapter: SafetensorsWriter
        public var notes: [String]
    }

    /// One imported module (a pair): its factors and what the config says.
    struct Pair {
        var path: PEFTModulePath
        var a: TensorEntry
        var b: TensorEntry
        /// DoRA's m `[out]` (`use_dora`).
        var magnitude: TensorEntry?
        var rank: Int { a.shape[0] }
        var outFeatures: Int { b.shape[0] }
        var inFeatures: Int { a.shape[1] }
    }

    public static func load(folder: String, specPath: String, stem: String, basePath: String?) throws -> Result {
        let configPath = (folder as NSString).appendingPathComponent("adapter_config.json")
        let weightsPath = (folder as NSString).appendingPathComponent("adapter_model.safetensors")
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: folder, isDirectory: &isFolder), isFolder.boolValue else {
            throw UserError("\(folder): not a folder (import-peft reads a PEFT adapter folder)")
        }
        let config = try PEFTConfig.read(configPath)
        let weights = try SafetensorsFile.read(path: weightsPath)
        let pairs = try collectPairs(weights, config: config, file: weightsPath, configPath: configPath)
        guard let prefix = pairs.first?.path.prefix else { throw UserError("\(weightsPath): holds no lora_A/lora_B tensors") }

        // Modules: one shape each, across layers.
        var shapes: [String: (out: Int, in: Int)] = [:]
        for pair in pairs {
            if let shape = shapes[pair.path.module], shape != (pair.outFeatures, pair.inFeatures) {
                throw UserError("\(weightsPath): module \"\(pair.path.module)\" is [\(shape.out), \(shape.in)] in one layer and [\(pair.outFeatures), \(pair.inFeatures)] in layer \(pair.path.layer)")
            }
            shapes[pair.path.module] = (pair.outFeatures, pair.inFeatures)
        }
        var layers = (pairs.map(\.path.layer).max() ?? 0) + 1
        var notes: [String] = []
        if let basePath {
            layers = try baseLayers(basePath, prefix: prefix, shapes: shapes, minimum: layers, transposed: config.fanInFanOut)
        }
        if config.fanInFanOut {
            notes.append("note: fan_in_fan_out: the base stores these weights [in, out]; the spec says so with model.weights.layout: in_out (A and B are unchanged)")
        }

        let spec = specText(name: specName(stem), layers: layers, prefix: prefix, shapes: shapes, pairs: pairs, config: config)
        let checked = try SpecLoader.check(source: spec, path: specPath)
        let (plan, diagnostics) = Planner.plan(checked)
        guard let plan else { throw SpecErrors(SpecLoader.sortedDiagnostics(checked.diagnostics + diagnostics)) }
        var adapter = SafetensorsWriter(metadata: AdapterFiles.metadata(checked))
        let byKey = Dictionary(uniqueKeysWithValues: pairs.map { (PairKey.key(layer: $0.path.layer, module: $0.path.module), $0) })
        for group in plan.groups {
            for planned in group.pairs {
                guard let pair = byKey[planned.key] else { preconditionFailure("import planned a pair it has no tensors for") }
                // The spec says what the config says; the plan must agree on the scale.
                let scale = config.scale(of: pair.path.path)
                guard abs(planned.scale - scale) <= 1e-9 * abs(scale) else {
                    throw UserError("internal error: the imported spec gives \(planned.key) scale \(planned.scale), the config \(scale)")
                }
                adapter.add(TensorKey.loraA(group.name, .layer(planned.layer), planned.module).description, floats: try weights.floats(pair.a.name), shape: pair.a.shape)
                adapter.add(TensorKey.loraB(group.name, .layer(planned.layer), planned.module).description, floats: try weights.floats(pair.b.name), shape: pair.b.shape)
                if let m = pair.magnitude {
                    adapter.add(TensorKey(group: group.name, role: .magnitude(layer: planned.layer, module: planned.module)).description, floats: try weights.floats(m.name), shape: m.shape)
                }
            }
        }
        return Result(spec: spec, checked: checked, adapter: adapter, notes: notes)
    }

    /// Pairs lora_A with lora_B per module and checks each against the config.
    static func collectPairs(_ weights: SafetensorsFile, config: PEFTConfig, file: String, configPath: String) throws -> [Pair] {
        var factors: [String: [PEFTKeys.Factor: TensorEntry]] = [:]
        for entry in weights.tensors {
            let (path, factor) = try PEFTKeys.parse(entry.name, file: file)
            if factor == .magnitude, !config.useDoRA {
                throw UserError("\(file): tensor \"\(entry.name)\": DoRA (lora_magnitude_vector), but the config's use_dora is not true")
            }
            guard entry.shape.count == (factor == .magnitude ? 1 : 2) else {
                if factor == .magnitude { throw UserError("\(file): tensor \"\(entry.name)\" has shape \(entry.shape); DoRA's magnitude is a vector [out]") }
                throw UserError("\(file): tensor \"\(entry.name)\" has shape \(entry.shape); lora_A/lora_B are matrices")
            }
            guard entry.dtype.isFloatingComputable else {
                throw UserError("\(file): tensor \"\(entry.name)\" is \(entry.dtype.rawValue); adaptc reads F32, F16 or BF16")
            }
            factors[path, default: [:]][factor] = entry
        }
        var pairs: [Pair] = []
        for (path, entries) in factors.sorted(by: { $0.key < $1.key }) {
            for factor in [PEFTKeys.Factor.a, .b] where entries[factor] == nil {
                throw UserError("\(file): tensor \"\(PEFTKeys.key(path, factor))\" is missing (its partner is there)")
            }
            let a = entries[.a]!, b = entries[.b]!
            guard b.shape[1] == a.shape[0] else {
                throw UserError("\(file): tensor \"\(b.name)\" has shape \(b.shape) but \"\(a.name)\" has rank \(a.shape[0])")
            }
            let magnitude = entries[.magnitude]
            if config.useDoRA {
                guard let magnitude else {
                    throw UserError("\(file): tensor \"\(PEFTKeys.key(path, .magnitude))\" is missing (the config sets use_dora)")
                }
                guard magnitude.shape == [b.shape[0]] else {
                    throw UserError("\(file): tensor \"\(magnitude.name)\" has shape \(magnitude.shape); DoRA's magnitude needs [\(b.shape[0])]")
                }
            }
            guard let modulePath = PEFTModulePath(path) else {
                throw UserError("\(file): tensor \"\(a.name)\": no layer index in \"\(path)\" (an integer after layer, layers, h or blocks)")
            }
            guard SwiftIdentifier.isDottedPath(modulePath.module) else {
                throw UserError("\(file): tensor \"\(a.name)\": module \"\(modulePath.module)\" is not a dotted path of identifiers, which adaptc needs to name it")
            }
            if let first = pairs.first, first.path.prefix != modulePath.prefix {
                throw UserError("\(file): tensor \"\(a.name)\": layers under \"\(modulePath.prefix)\" and \"\(first.path.prefix)\"; adaptc imports one stack of layers")
            }
            // The config alone must give every tensor's module, rank and layer.
            guard config.isTargeted(path) else {
                throw UserError("\(configPath): target_modules does not cover \"\(path)\", which \(file) adapts")
            }
            let rank = config.rank(of: path)
            guard rank == a.shape[0] else {
                throw UserError("\(configPath): the config gives \"\(path)\" rank \(rank), but tensor \"\(a.name)\" has rank \(a.shape[0])")
            }
            if let layers = config.layersToTransform, !layers.contains(modulePath.layer) {
                throw UserError("\(configPath): layers_to_transform \(layers) excludes layer \(modulePath.layer), which \(file) adapts")
            }
            pairs.append(Pair(path: modulePath, a: a, b: b, magnitude: magnitude))
        }
        return pairs
    }

    /// Layers from `--base`: one past the highest layer that holds one of the
    /// modules, after checking every module's weight shape there.
    static func baseLayers(_ basePath: String, prefix: String, shapes: [String: (out: Int, in: Int)],
                           minimum: Int, transposed: Bool) throws -> Int {
        let base = try BaseCheckpoint.open(basePath)
        var layers = 0
        for layer in 0..<SizeLimits.maximumDimension {
            let present = shapes.keys.sorted().filter { base.locate("\(prefix).\(layer).\($0).weight") != nil }
            if present.isEmpty, layer >= minimum { break }
            for module in present {
                let key = "\(prefix).\(layer).\(module).weight"
                let (file, entry) = base.locate(key)!
                let shape = shapes[module]!
                let expected = transposed ? [shape.in, shape.out] : [shape.out, shape.in]
                guard entry.shape == expected else {
                    throw UserError("\(file.path): tensor \"\(key)\" has shape \(entry.shape); the adapter needs \(expected)")
                }
            }
            if !present.isEmpty { layers = layer + 1 }
        }
        guard layers >= minimum else {
            throw UserError("\(basePath): has no \"\(prefix).\(minimum - 1).…\" weights, but the adapter adapts layer \(minimum - 1)")
        }
        return layers
    }

    /// `lora_qv` → `LoraQv`; a name that would not start with a letter gets `Peft` in front.
    static func specName(_ stem: String) -> String {
        let words = stem.split { !($0.isASCII && ($0.isLetter || $0.isNumber)) }
        let name = words.map { $0.prefix(1).uppercased() + $0.dropFirst() }.joined()
        return name.first.map { $0.isLetter } == true ? name : "Peft" + name
    }

    /// One lora group per set of modules that cover the same layers.
    static func specText(name: String, layers: Int, prefix: String, shapes: [String: (out: Int, in: Int)],
                         pairs: [Pair], config: PEFTConfig) -> String {
        var layersOf: [String: [Int]] = [:]
        for pair in pairs { layersOf[pair.path.module, default: []].append(pair.path.layer) }
        var groups: [(layers: [Int], modules: [String])] = []
        for module in layersOf.keys.sorted() {
            let set = layersOf[module]!.sorted()
            if let i = groups.firstIndex(where: { $0.layers == set }) { groups[i].modules.append(module) } else { groups.append((set, [module])) }
        }
        var lines = [
            "# Imported from PEFT by adaptc import-peft.",
            "adaptc: 1",
            "name: \(name)",
            "model:",
            "  layers: \(layers)",
            "  modules:",
        ]
        for module in shapes.keys.sorted() { lines.append("    \(module): [\(shapes[module]!.out), \(shapes[module]!.in)]") }
        // fan_in_fan_out: the base stores these weights [in, out] (GPT-2's Conv1D); A and B are unchanged.
        let layout = config.fanInFanOut ? ", layout: \(WeightLayout.inOut.rawValue)" : ""
        lines.append("  weights: {key: \"\(prefix).{layer}.{module}.weight\"\(layout)}")
        lines.append("adapters:")
        for (index, group) in groups.enumerated() {
            lines.append("  - name: \(index == 0 ? "lora" : "lora_\(index + 1)")")
            lines.append("    structure: lora")
            lines.append("    layers: " + (group.layers == Array(0..<layers) ? "all" : "[\(group.layers.map(String.init).joined(separator: ", "))]"))
            lines.append("    modules: [\(group.modules.joined(separator: ", "))]")
            lines.append("    rank: \(config.r)")
            lines.append("    alpha: \(number(config.loraAlpha))")
            if config.useRSLoRA { lines.append("    scaling: rslora") }
            if config.useDoRA { lines.append("    dora: true") }
            var overrides: [String] = []
            for pair in pairs where group.modules.contains(pair.path.module) {
                let rank = config.rank(of: pair.path.path), alpha = config.alpha(of: pair.path.path)
                var fields: [String] = []
                if rank != config.r { fields.append("rank: \(rank)") }
                if alpha != config.loraAlpha { fields.append("alpha: \(number(alpha))") }
                if !fields.isEmpty {
                    overrides.append("      \"\(pair.path.layer).\(pair.path.module)\": {\(fields.joined(separator: ", "))}")
                }
            }
            if !overrides.isEmpty { lines.append("    overrides:"); lines += overrides }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// Integers without a fraction; other values in Swift's shortest round-trip form.
    static func number(_ value: Double) -> String {
        if let int = Int(exactly: value) { return String(int) }
        return "\(value)"
    }
}
