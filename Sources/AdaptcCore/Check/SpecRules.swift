/// The rules on the spec as a whole: `adaptc`, `name`, `adapters`, `prune`, `codegen`.
enum SpecRules {
    static let supportedVersion = 1

    static func check(_ spec: AdapterSpec, _ diagnostics: inout DiagnosticCollector) {
        func at(_ key: String) -> SourceLocation { spec.keyLocations[key] ?? spec.location }

        if spec.version != supportedVersion {
            diagnostics.error("unsupported format version \(spec.version); this adaptc reads 'adaptc: \(supportedVersion)'",
                              at: at("adaptc"))
        }
        if let problem = typeNameProblem(spec.name) {
            diagnostics.error(problem, at: at("name"))
        }
        if spec.groups.isEmpty {
            diagnostics.error("'adapters' lists no groups; a spec needs at least one", at: at("adapters"))
        }

        let threshold = spec.prune.threshold
        if !(threshold > 0 && threshold <= 1) {
            diagnostics.error("'prune.threshold' must be in (0, 1] (the share of importance to keep), found \(threshold)",
                              at: at("prune.threshold"))
        }
        if spec.prune.levels.isEmpty {
            diagnostics.error("'prune.levels' must name at least one of layer, rank", at: at("prune.levels"))
        }
        for (i, level) in spec.prune.levels.enumerated() where spec.prune.levels[..<i].contains(level) {
            diagnostics.error("prune level '\(level.rawValue)' is listed twice", at: at("prune.levels[\(i)]"))
        }

        if case .fixed(let tokens) = spec.codegen.tokens, !(1...SizeLimits.maximumDimension).contains(tokens) {
            diagnostics.error("'codegen.tokens' must be dynamic or a token count in 1...\(SizeLimits.grouped(SizeLimits.maximumDimension)), found \(tokens)",
                              at: at("codegen.tokens"))
        }
    }

    /// Why `name` cannot name the generated type, or nil when it can.
    static func typeNameProblem(_ name: String) -> String? {
        if SwiftIdentifier.isKeyword(name) { return "name '\(name)' is a Swift keyword; pick another type name" }
        if SwiftIdentifier.isUpperCamelCase(name) { return nil }
        var message = "name '\(name)' must be an UpperCamelCase Swift identifier (ASCII letters and digits, "
            + "starting with an uppercase letter)"
        if let fixed = upperCamelCase(name), fixed != name { message += "; did you mean '\(fixed)'?" }
        return message
    }

    /// `bert_attention` / `bert-attention` / `bertAttention` → `BertAttention`, if that is valid.
    static func upperCamelCase(_ text: String) -> String? {
        let words = text.split { !($0.isASCII && ($0.isLetter || $0.isNumber)) }
        let joined = words.map { $0.prefix(1).uppercased() + $0.dropFirst() }.joined()
        return SwiftIdentifier.isUpperCamelCase(joined) ? joined : nil
    }
}
