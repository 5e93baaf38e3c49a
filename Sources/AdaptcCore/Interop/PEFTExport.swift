import AdaptRuntime
import Foundation

/// `adaptc export-peft`: the two files PEFT loads (DESIGN §5), with a config
/// that makes PEFT target exactly the covered pairs with the same ranks and
/// scales: `target_modules` is a regex that fully matches the pairs' module
/// paths and nothing else; the most common rank and alpha are global and the
/// rest become `rank_pattern`/`alpha_pattern` entries keyed by escaped paths.
public enum PEFTExport {
    public struct Result {
        public var config: [UInt8]
        public var weights: SafetensorsWriter
        public var pairs: Int
    }

    struct Pair {
        var path: String
        var rank: Int
        var scale: Double
        var a: [Float]
        var b: [Float]
        /// DoRA's m `[out]`, for a `dora: true` group.
        var magnitude: [Float]? = nil
        var inFeatures: Int
        var outFeatures: Int
    }

    public static func build(specPath: String, adapterPath: String, task taskName: String? = nil) throws -> Result {
        let (checked, plan) = try SpecLoader.loadPlanned(path: specPath)
        let task = try TaskChoice.resolve(taskName, in: plan, specPath: specPath, command: "export-peft").map { plan.tasks[$0] }
        let template = try WeightKeyTemplate(checked, for: "export-peft")
        guard template.template.hasSuffix(".weight") else {
            throw UserError("\(specPath): export-peft needs model.weights.key to end in \".weight\" (PEFT names modules, not weights); it is \"\(template.template)\"")
        }
        for group in checked.groups where group.structure.perPairLoRA == nil {
            throw UserError("\(specPath): group '\(group.name)' is \(group.group.structure.rawValue); export-peft writes LoRA groups only")
        }
        // PEFT's use_dora is one flag for the whole adapter.
        let doraGroups = checked.groups.filter(\.group.dora).map(\.name)
        if !doraGroups.isEmpty, doraGroups.count != checked.groups.count {
            let plain = checked.groups.first { !$0.group.dora }!.name
            throw UserError("\(specPath): group '\(doraGroups[0])' is DoRA and '\(plain)' is not; PEFT's use_dora covers a whole adapter, so export them as two specs")
        }
        let useDoRA = !doraGroups.isEmpty
        let interpreter = try AdapterFiles.load(adapterPath, checked: checked, plan: plan, threads: 1)
        let parameters = interpreter.storage.parameters
        var pairs: [Pair] = []
        try checked.forEachPerPairLoRA(plan: plan, parameters: parameters, task: task) { _, pair, a, b in
            let key = template.key(pair)
            var exported = Pair(path: String(key.dropLast(".weight".count)), rank: pair.rank, scale: pair.scale,
                                a: a, b: b, inFeatures: pair.inFeatures, outFeatures: pair.outFeatures)
            if let m = pair.dora?.magnitude {
                exported.magnitude = m.values(in: parameters)
            }
            pairs.append(exported)
        }
        pairs.sort { $0.path < $1.path }
        var weights = SafetensorsWriter(metadata: ["format": "pt"])
        for pair in pairs {
            weights.add(PEFTKeys.key(pair.path, .a), floats: pair.a, shape: [pair.rank, pair.inFeatures])
            weights.add(PEFTKeys.key(pair.path, .b), floats: pair.b, shape: [pair.outFeatures, pair.rank])
            if let m = pair.magnitude { weights.add(PEFTKeys.key(pair.path, .magnitude), floats: m, shape: [pair.outFeatures]) }
        }
        let rslora = checked.groups.filter { $0.group.scaling == .rslora }.map(\.pairs.count).reduce(0, +) * 2
            > checked.groups.map(\.pairs.count).reduce(0, +)
        // A task some group has no slice for covers fewer pairs than the groups' regex.
        let whole = task == nil || pairs.count == plan.pairs.count
        let targets = (whole ? targetRegex(plan, template: template) : nil) ?? pairs.map { NSRegularExpression.escapedPattern(for: $0.path) }.joined(separator: "|")
        return Result(config: try configJSON(pairs, rslora: rslora, targets: targets, fanInFanOut: template.isTransposed,
                                             useDoRA: useDoRA),
                      weights: weights, pairs: pairs.count)
    }

    /// The config as PEFT reads it; keys sorted, so the file is deterministic.
    static func configJSON(_ pairs: [Pair], rslora: Bool, targets: String, fanInFanOut: Bool = false,
                           useDoRA: Bool = false) throws -> [UInt8] {
        // alpha that gives the pair's scale under the global rule.
        let alphas = pairs.map { pair -> Double in
            let alpha = pair.scale * (rslora ? Double(pair.rank).squareRoot() : Double(pair.rank))
            // 16/√8·√8 is 16 up to rounding; PEFT's configs hold the integer.
            return abs(alpha - alpha.rounded()) <= 1e-9 * abs(alpha) ? alpha.rounded() : alpha
        }
        let r = mostCommon(pairs.map(\.rank))
        // Counted after rounding (alphas recomputed from scales differ in the last bits), written exactly.
        let rounded = alphas.map { ($0 * 1e9).rounded() / 1e9 }
        let common = mostCommon(rounded)
        let alpha = alphas[rounded.firstIndex(of: common)!]
        var rankPattern: [String: Any] = [:], alphaPattern: [String: Any] = [:]
        for (pair, pairAlpha) in zip(pairs, alphas) {
            let key = NSRegularExpression.escapedPattern(for: pair.path)
            if pair.rank != r { rankPattern[key] = pair.rank }
            if abs(pairAlpha - alpha) > 1e-9 * abs(alpha) { alphaPattern[key] = json(pairAlpha) }
        }
        let config: [String: Any] = [
            "peft_type": "LORA",
            "r": r,
            "lora_alpha": json(alpha),
            "use_rslora": rslora,
            "target_modules": targets,
            "rank_pattern": rankPattern,
            "alpha_pattern": alphaPattern,
            "fan_in_fan_out": fanInFanOut,
            "bias": "none",
            "lora_dropout": 0.0,
            "use_dora": useDoRA,
            "init_lora_weights": true,
            "inference_mode": true,
            "modules_to_save": NSNull(),
            "layers_to_transform": NSNull(),
            "task_type": NSNull(),
            "base_model_name_or_path": NSNull(),
        ]
        let data = try JSONSerialization.data(withJSONObject: config, options: [.prettyPrinted, .sortedKeys])
        return Array(data) + [UInt8(ascii: "\n")]
    }

    /// `P(?:0|1)M(?:query|value)S` per group, for a template `P{layer}M{module}S.weight`:
    /// a lora group covers every (layer, module) of its two lists, so this
    /// fully matches exactly its pairs. nil for templates of another form.
    static func targetRegex(_ plan: Plan, template: WeightKeyTemplate) -> String? {
        let text = String(template.template.dropLast(".weight".count))
        let first = text.components(separatedBy: "{layer}"), rest = first.count == 2 ? first[1].components(separatedBy: "{module}") : []
        guard rest.count == 2, !first[0].contains("{module}") else { return nil }
        let escape = NSRegularExpression.escapedPattern(for:)
        return plan.groups.map { group in
            var layers: [Int] = [], modules: [String] = []
            for pair in group.pairs {
                if !layers.contains(pair.layer) { layers.append(pair.layer) }
                if !modules.contains(pair.module) { modules.append(pair.module) }
            }
            return escape(first[0]) + "(?:" + layers.sorted().map(String.init).joined(separator: "|") + ")" + escape(rest[0])
                + "(?:" + modules.sorted().map(escape).joined(separator: "|") + ")" + escape(rest[1])
        }.joined(separator: "|")
    }

    /// The most frequent value; ties go to the smallest, for determinism.
    static func mostCommon<T: Hashable & Comparable>(_ values: [T]) -> T {
        var counts: [T: Int] = [:]
        for value in values { counts[value, default: 0] += 1 }
        return counts.max { $0.value != $1.value ? $0.value < $1.value : $0.key > $1.key }!.key
    }

    /// Integral values as JSON integers (as PEFT writes r and lora_alpha).
    static func json(_ value: Double) -> Any { Int(exactly: value).map { $0 as Any } ?? value }
}
