/// What may become a name in generated Swift source. A spec's names (the spec's
/// `name`, group names, module enum cases) are pasted into emitted code, so they
/// are checked here first and never escaped with backticks: DESIGN §5 asks for
/// valid, non-keyword identifiers. Only ASCII is accepted, so that generated
/// files read the same in every editor and diff.
public enum SwiftIdentifier {
    /// Swift's reserved words (The Swift Programming Language, "Lexical Structure",
    /// Keywords and Punctuation), plus the contextual keywords that break or confuse
    /// code when used as a type, case or property name (`Type`, `await`, `some`, …).
    /// Matching is exact: `Self` and `self` are both listed, `Class` is allowed.
    public static let keywords: Set<String> = [
        // Declarations.
        "associatedtype", "borrowing", "class", "consuming", "deinit", "enum", "extension",
        "fileprivate", "func", "import", "init", "inout", "internal", "let", "nonisolated",
        "open", "operator", "package", "private", "precedencegroup", "protocol", "public",
        "rethrows", "static", "struct", "subscript", "typealias", "var",
        // Statements.
        "break", "case", "catch", "continue", "default", "defer", "do", "else", "fallthrough",
        "for", "guard", "if", "in", "repeat", "return", "switch", "throw", "where", "while",
        // Expressions and types.
        "Any", "as", "await", "false", "is", "nil", "self", "Self", "super", "throws", "true", "try",
        // Patterns.
        "_",
        // Contextual keywords that are unsafe as generated member or type names.
        "Protocol", "Type", "actor", "any", "async", "consume", "copy", "discard", "each",
        "macro", "some",
    ]

    public static func isKeyword(_ name: String) -> Bool { keywords.contains(name) }

    /// An ASCII Swift identifier: a letter or `_`, then letters, digits or `_`; not a keyword.
    public static func isValid(_ name: String) -> Bool {
        isIdentifierShaped(name) && !isKeyword(name)
    }

    /// A type name as DESIGN §5 asks for `name:`: an uppercase ASCII letter, then
    /// letters and digits only (no `_`), not a keyword.
    public static func isUpperCamelCase(_ name: String) -> Bool {
        guard let first = name.unicodeScalars.first, isUpper(first) else { return false }
        return name.unicodeScalars.allSatisfy { isLetter($0) || isDigit($0) } && !isKeyword(name)
    }

    /// A group name: `lower_snake_case` — lowercase letters and digits in words
    /// joined by single `_`, starting with a letter — and not a keyword.
    public static func isLowerSnakeCase(_ name: String) -> Bool {
        guard let first = name.unicodeScalars.first, isLower(first), name.last != "_",
              !name.contains("__") else { return false }
        return name.unicodeScalars.allSatisfy { isLower($0) || isDigit($0) || $0 == "_" } && !isKeyword(name)
    }

    /// Letters, digits and `_`, not starting with a digit; keywords allowed.
    public static func isIdentifierShaped(_ name: String) -> Bool {
        guard let first = name.unicodeScalars.first, isLetter(first) || first == "_" else { return false }
        return name.unicodeScalars.allSatisfy { isLetter($0) || isDigit($0) || $0 == "_" }
    }

    /// A module name: identifiers joined by `.` (`attention.self.query`). The parts
    /// may be keywords: only the joined enum case (ModelModule.caseName) is pasted
    /// into source, and it is checked on its own.
    public static func isDottedPath(_ name: String) -> Bool {
        let parts = name.split(separator: ".", omittingEmptySubsequences: false)
        return !parts.isEmpty && parts.allSatisfy { isIdentifierShaped(String($0)) }
    }

    private static func isUpper(_ c: Unicode.Scalar) -> Bool { ("A"..."Z").contains(c) }
    private static func isLower(_ c: Unicode.Scalar) -> Bool { ("a"..."z").contains(c) }
    private static func isLetter(_ c: Unicode.Scalar) -> Bool { isUpper(c) || isLower(c) }
    private static func isDigit(_ c: Unicode.Scalar) -> Bool { ("0"..."9").contains(c) }
}
