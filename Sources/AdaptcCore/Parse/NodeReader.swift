import Yams

/// Typed reads of YAML nodes. Each read either returns a value or records one
/// error at the offending node (naming the key and the type it wants) and
/// returns nil, so the parser carries on and reports every problem of a file in
/// one run. Value ranges (positive, at most 1,048,576, …) are Check's business:
/// Parse only makes sure each value has the type its key needs.
struct NodeReader {
    let path: String
    private(set) var diagnostics = DiagnosticCollector()

    init(path: String) { self.path = path }

    /// One `key: value` of a mapping, with where each was written.
    struct Entry {
        var key: String
        var keyLocation: SourceLocation
        var value: Node
        var valueLocation: SourceLocation
        /// How messages name this key: `'rank'`, `'init.seed'`.
        var what: String
    }

    mutating func error(_ message: String, at location: SourceLocation) {
        diagnostics.error(message, at: location)
    }

    func location(of node: Node, or fallback: SourceLocation) -> SourceLocation {
        guard let mark = node.mark else { return fallback }
        return SourceLocation(path: path, line: mark.line, column: mark.column)
    }

    // MARK: Mappings

    /// Every entry of a mapping in file order. Keys must be scalars; their text is
    /// the key (`1: …` gives `"1"`). `prefix` names nested keys in messages (`init.`).
    mutating func entries(of node: Node, at location: SourceLocation, what: String,
                          prefix: String = "") -> [Entry]? {
        guard case .mapping(let mapping) = node else {
            error("\(what) must be a mapping, found \(found(node))", at: location)
            return nil
        }
        var result: [Entry] = []
        for (key, value) in mapping {
            let keyLocation = self.location(of: key, or: location)
            guard case .scalar(let scalar) = key else {
                error("keys of \(what) must be plain names, found \(found(key))", at: keyLocation)
                continue
            }
            result.append(Entry(key: scalar.string, keyLocation: keyLocation, value: value,
                                valueLocation: self.location(of: value, or: keyLocation),
                                what: "'\(prefix)\(scalar.string)'"))
        }
        return result
    }

    /// A mapping with a fixed set of keys: unknown keys are errors with a
    /// "did you mean" hint, missing required keys are errors at the mapping.
    mutating func mapping(_ node: Node, at location: SourceLocation, what: String, prefix: String = "",
                          allowed: [String], required: [String] = []) -> [String: Entry]? {
        guard let entries = entries(of: node, at: location, what: what, prefix: prefix) else { return nil }
        var known: [String: Entry] = [:]
        var suggested: Set<String> = []
        for entry in entries {
            guard allowed.contains(entry.key) else {
                let suggestion = DidYouMean.suggestion(for: entry.key, among: allowed)
                if let suggestion { suggested.insert(suggestion) }
                let hint = suggestion.map { "; did you mean '\($0)'?" } ?? " (known keys: \(allowed.joined(separator: ", ")))"
                error("unknown key '\(entry.key)' in \(what)\(hint)", at: entry.keyLocation)
                continue
            }
            known[entry.key] = entry
        }
        // A misspelt required key is reported once, as the typo, not again as missing.
        for key in required where known[key] == nil && !suggested.contains(key) {
            error("\(what) is missing the required key '\(prefix)\(key)'", at: location)
        }
        return known
    }

    // MARK: Scalars

    mutating func int(_ entry: Entry) -> Int? { int(entry.value, at: entry.valueLocation, what: entry.what) }

    /// An integer literal that fits in 64 bits; floats (even `8.0`), strings and
    /// out-of-range literals are errors.
    mutating func int(_ node: Node, at location: SourceLocation, what: String) -> Int? {
        if case .scalar(let scalar) = node {
            switch YAMLScalar(scalar) {
            case .int(let value): return value
            case .intOutOfRange(let text):
                error("\(what) must be an integer, found \(text), which is out of range", at: location)
                return nil
            default: break
            }
        }
        error("\(what) must be an integer, found \(found(node))", at: location)
        return nil
    }

    /// An integer or a float (`.inf` and `.nan` included; Check rejects them where it must).
    mutating func number(_ entry: Entry) -> Double? {
        if case .scalar(let scalar) = entry.value {
            switch YAMLScalar(scalar) {
            case .int(let value): return Double(value)
            case .intOutOfRange(let text): return Double(text)
            case .float(let value): return value
            default: break
            }
        }
        error("\(entry.what) must be a number, found \(found(entry.value))", at: entry.valueLocation)
        return nil
    }

    mutating func string(_ entry: Entry) -> String? { string(entry.value, at: entry.valueLocation, what: entry.what) }

    /// A string scalar; a number or boolean where a string is wanted is an error
    /// (quote it if it is meant as text).
    mutating func string(_ node: Node, at location: SourceLocation, what: String) -> String? {
        if case .scalar(let scalar) = node, case .string(let text) = YAMLScalar(scalar) { return text }
        error("\(what) must be a string, found \(found(node))", at: location)
        return nil
    }

    mutating func bool(_ entry: Entry) -> Bool? {
        if case .scalar(let scalar) = entry.value, case .bool(let value) = YAMLScalar(scalar) { return value }
        error("\(entry.what) must be true or false, found \(found(entry.value))", at: entry.valueLocation)
        return nil
    }

    mutating func choice<T: RawRepresentable & CaseIterable>(_ entry: Entry, as type: T.Type = T.self) -> T?
    where T.RawValue == String {
        choice(entry.value, at: entry.valueLocation, what: entry.what)
    }

    /// One of an enumeration's raw values, with a "did you mean" hint for typos.
    mutating func choice<T: RawRepresentable & CaseIterable>(_ node: Node, at location: SourceLocation,
                                                             what: String, as type: T.Type = T.self) -> T?
    where T.RawValue == String {
        let names = T.allCases.map(\.rawValue)
        let expected = names.joined(separator: ", ")
        guard case .scalar(let scalar) = node, case .string(let text) = YAMLScalar(scalar) else {
            error("\(what) must be one of \(expected), found \(found(node))", at: location)
            return nil
        }
        if let value = T(rawValue: text) { return value }
        let hint = DidYouMean.hint(for: text, among: names)
        error("\(what) must be one of \(expected), found '\(text)'\(hint)", at: location)
        return nil
    }

    // MARK: Lists

    mutating func list(_ entry: Entry) -> [Node]? { list(entry.value, at: entry.valueLocation, what: entry.what) }

    mutating func list(_ node: Node, at location: SourceLocation, what: String) -> [Node]? {
        guard case .sequence(let sequence) = node else {
            error("\(what) must be a list, found \(found(node))", at: location)
            return nil
        }
        return Array(sequence)
    }

    /// A list of integers with each element's location; nil if any element is not one.
    mutating func intList(_ entry: Entry) -> [(value: Int, location: SourceLocation)]? {
        guard let nodes = list(entry) else { return nil }
        var values: [(value: Int, location: SourceLocation)] = []
        var ok = true
        for node in nodes {
            let location = self.location(of: node, or: entry.valueLocation)
            if let value = int(node, at: location, what: "each entry of \(entry.what)") {
                values.append((value, location))
            } else {
                ok = false
            }
        }
        return ok ? values : nil
    }

    /// A list of strings with each element's location; nil if any element is not one.
    mutating func stringList(_ entry: Entry) -> [(value: String, location: SourceLocation)]? {
        guard let nodes = list(entry) else { return nil }
        var values: [(value: String, location: SourceLocation)] = []
        var ok = true
        for node in nodes {
            let location = self.location(of: node, or: entry.valueLocation)
            if let value = string(node, at: location, what: "each entry of \(entry.what)") {
                values.append((value, location))
            } else {
                ok = false
            }
        }
        return ok ? values : nil
    }

    // MARK: Messages

    /// How a message names a node that has the wrong type.
    func found(_ node: Node) -> String {
        switch node {
        case .scalar(let scalar): return YAMLScalar(scalar).foundDescription(writtenAs: scalar.string)
        case .sequence: return "a list"
        case .mapping: return "a mapping"
        case .alias: return "an alias"
        }
    }
}
