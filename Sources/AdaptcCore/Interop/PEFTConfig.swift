import AdaptRuntime
import Foundation

/// PEFT's `adapter_config.json` for a LoRA adapter, reduced to what decides
/// which modules are adapted and how (DESIGN §5), with PEFT's own rules:
///
///     r_m     = rank_pattern[k]  for the first key k (JSON order) with re.match(r"(.*\.)?(k)$", m); else r
///     alpha_m = alpha_pattern[k] by the same rule;                                               else lora_alpha
///     scale_m = alpha_m / √r_m with use_rslora, else alpha_m / r_m
///
/// and a module is targeted when it ends with `.t` (or is `t`) for some t in a
/// `target_modules` list, or fully matches `target_modules` given as a regex.
/// Features adaptc does not run are refused by name, never dropped.
public struct PEFTConfig: Sendable {
    public enum Targets: Sendable, Equatable {
        case names([String])
        case regex(String)
    }

    public var r: Int
    public var loraAlpha: Double
    public var useRSLoRA = false
    public var targets: Targets
    public var rankPattern: [(pattern: String, value: Int)] = []
    public var alphaPattern: [(pattern: String, value: Double)] = []
    public var fanInFanOut = false
    /// `use_dora`: every pair also has a `lora_magnitude_vector` (DESIGN §5).
    public var useDoRA = false
    public var layersToTransform: [Int]?

    public init(r: Int, loraAlpha: Double, targets: Targets) {
        self.r = r
        self.loraAlpha = loraAlpha
        self.targets = targets
    }

    // MARK: PEFT's rules

    public func isTargeted(_ module: String) -> Bool {
        switch targets {
        case .names(let names):
            return names.contains { module == $0 || module.hasSuffix("." + $0) }
        case .regex(let pattern):
            return Self.fullMatch(pattern, module)
        }
    }

    public func rank(of module: String) -> Int {
        rankPattern.first { Self.patternMatches($0.pattern, module) }?.value ?? r
    }

    public func alpha(of module: String) -> Double {
        alphaPattern.first { Self.patternMatches($0.pattern, module) }?.value ?? loraAlpha
    }

    public func scale(of module: String) -> Double {
        let r = Double(rank(of: module))
        return alpha(of: module) / (useRSLoRA ? r.squareRoot() : r)
    }

    /// `re.match(r"(.*\.)?(KEY)$", module)`: anchored at the start, `$` at the end.
    static func patternMatches(_ key: String, _ module: String) -> Bool {
        fullMatch("(.*\\.)?(\(key))", module)
    }

    static func fullMatch(_ pattern: String, _ text: String) -> Bool {
        guard let regex = try? NSRegularExpression(pattern: "^(?:\(pattern))$") else { return false }
        return regex.firstMatch(in: text, range: NSRange(text.startIndex..., in: text)) != nil
    }

    // MARK: Reading

    /// Features PEFT has that adaptc does not run: each refused by name when set.
    static let unsupported: [(key: String, feature: String)] = [
        ("lora_bias", "LoRA biases (lora_bias)"), ("use_qalora", "QA-LoRA (use_qalora)"),
        ("modules_to_save", "modules_to_save (fully trained copies of modules)"),
        ("layer_replication", "layer_replication"), ("target_parameters", "target_parameters (LoRA on parameters)"),
        ("trainable_token_indices", "trainable_token_indices"), ("alora_invocation_tokens", "aLoRA (alora_invocation_tokens)"),
        ("use_bdlora", "use_bdlora"), ("exclude_modules", "exclude_modules"), ("layers_pattern", "layers_pattern"),
        ("megatron_config", "megatron_config"), ("arrow_config", "Arrow routing (arrow_config)"),
    ]

    public static func read(_ path: String) throws -> PEFTConfig {
        let data: [UInt8]
        do throws(SmallFile.Failure) {
            data = try SmallFile.read(path, limit: 16 << 20)
        } catch .unreadable(let reason) {
            throw UserError("\(path): cannot read (\(reason)); a PEFT adapter folder holds adapter_config.json and adapter_model.safetensors")
        } catch {
            throw UserError("\(path): not a UTF-8 JSON file of at most 16 MiB")
        }
        guard let text = String(data: Data(data), encoding: .utf8) else {
            throw UserError("\(path): not a UTF-8 JSON file of at most 16 MiB")
        }
        let json: HeaderJSON
        do throws(HeaderJSONParser.SyntaxError) {
            json = try HeaderJSONParser.parse(text: text)
        } catch {
            throw UserError("\(path): not valid JSON: \(error.detail) at byte \(error.offset)")
        }
        guard case .object(let members) = json else { throw UserError("\(path): not a JSON object") }
        var fields: [String: HeaderJSON] = [:]
        for (key, value) in members {
            guard fields.updateValue(value, forKey: key) == nil else { throw UserError("\(path): key \"\(key)\" appears twice") }
        }
        let reader = FieldReader(path: path, fields: fields)

        let type = try reader.string("peft_type") ?? "LORA"
        guard type == "LORA" else { throw UserError("\(path): peft_type \"\(type)\": adaptc imports LoRA adapters only") }
        for (key, feature) in unsupported where reader.isSet(key) {
            throw UserError("\(path): \(feature) is a PEFT feature adaptc does not run")
        }
        if let bias = try reader.string("bias"), bias != "none" {
            throw UserError("\(path): bias \"\(bias)\": adaptc runs LoRA without trained biases (bias \"none\")")
        }
        guard let r = try reader.int("r"), r >= 1 else { throw UserError("\(path): \"r\" must be a positive integer") }
        // A spec's alpha is a positive finite number; 0, a negative value or one that
        // underflows to 0 (1e-400) would make import-peft write a spec that does not check.
        let alpha = try reader.number("lora_alpha") ?? 8  // PEFT's default
        guard alpha > 0 else { throw UserError("\(path): \"lora_alpha\" must be a positive number, not \(fields["lora_alpha"]!.summary)") }
        let targets: Targets
        switch fields["target_modules"] {
        case .string(let pattern)?:
            guard (try? NSRegularExpression(pattern: pattern)) != nil else {
                throw UserError("\(path): target_modules \"\(pattern)\" is not a regular expression adaptc can read")
            }
            targets = .regex(pattern)
        case .array(let items)?:
            targets = .names(try items.map {
                guard case .string(let name) = $0 else { throw UserError("\(path): target_modules must list strings") }
                return name
            })
        default:
            throw UserError("\(path): target_modules must be a list of module names or a regular expression")
        }
        var config = PEFTConfig(r: r, loraAlpha: alpha, targets: targets)
        config.useRSLoRA = try reader.bool("use_rslora") ?? false
        config.fanInFanOut = try reader.bool("fan_in_fan_out") ?? false
        config.useDoRA = try reader.bool("use_dora") ?? false
        config.rankPattern = try reader.patterns("rank_pattern").map { key, value in
            guard let rank = Int(value), rank >= 1 else { throw UserError("\(path): rank_pattern \"\(key)\" must map to a positive integer") }
            return (key, rank)
        }
        config.alphaPattern = try reader.patterns("alpha_pattern").map { key, value in
            guard let alpha = Double(value), alpha.isFinite, alpha > 0 else {
                throw UserError("\(path): alpha_pattern \"\(key)\" must map to a positive finite number, not \(HeaderJSON.number(value).summary)")
            }
            return (key, alpha)
        }
        switch fields["layers_to_transform"] {
        case nil, .null?: break
        case .number(let n)?:
            // Not an integer (1.5) was taken as "no restriction": every layer imported without a word.
            guard let layer = Int(n) else { throw UserError("\(path): layers_to_transform must be an integer or a list of them, not \(n)") }
            config.layersToTransform = [layer]
        case .array(let items)?:
            config.layersToTransform = items.compactMap { if case .number(let n) = $0 { Int(n) } else { nil } }
            guard config.layersToTransform!.count == items.count else { throw UserError("\(path): layers_to_transform must list integers") }
        default: throw UserError("\(path): layers_to_transform must be an integer or a list of them")
        }
        return config
    }

    private struct FieldReader {
        let path: String
        let fields: [String: HeaderJSON]

        /// Set: neither absent, null, false, an empty list/object nor "".
        func isSet(_ key: String) -> Bool {
            switch fields[key] {
            case nil, .null?, .bool(false)?: false
            case .array(let items)?: !items.isEmpty
            case .object(let members)?: !members.isEmpty
            case .string(let text)?: !text.isEmpty
            default: true
            }
        }

        func string(_ key: String) throws -> String? {
            switch fields[key] {
            case nil, .null?: return nil
            case .string(let text)?: return text
            case let other?: throw UserError("\(path): \"\(key)\" must be a string, not \(other.summary)")
            }
        }

        func bool(_ key: String) throws -> Bool? {
            switch fields[key] {
            case nil, .null?: return nil
            case .bool(let value)?: return value
            case let other?: throw UserError("\(path): \"\(key)\" must be true or false, not \(other.summary)")
            }
        }

        func number(_ key: String) throws -> Double? {
            switch fields[key] {
            case nil, .null?: return nil
            case .number(let lexeme)?:
                guard let value = Double(lexeme), value.isFinite else { throw UserError("\(path): \"\(key)\" \(lexeme) is not a finite number") }
                return value
            case let other?: throw UserError("\(path): \"\(key)\" must be a number, not \(other.summary)")
            }
        }

        func int(_ key: String) throws -> Int? {
            guard let value = try number(key) else { return nil }
            guard let int = Int(exactly: value) else { throw UserError("\(path): \"\(key)\" must be an integer, not \(value)") }
            return int
        }

        /// An object of regex → number, in JSON order (first match wins).
        func patterns(_ key: String) throws -> [(String, String)] {
            switch fields[key] {
            case nil, .null?: return []
            case .object(let members)?:
                return try members.map { name, value in
                    guard case .number(let lexeme) = value else { throw UserError("\(path): \(key) \"\(name)\" must map to a number") }
                    guard (try? NSRegularExpression(pattern: name)) != nil else {
                        throw UserError("\(path): \(key) key \"\(name)\" is not a regular expression adaptc can read")
                    }
                    return (name, lexeme)
                }
            case let other?: throw UserError("\(path): \"\(key)\" must be an object, not \(other.summary)")
            }
        }
    }
}
