/// A place in a spec file: 1-based line and column, as Yams' node marks give them.
public struct SourceLocation: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The spec's path exactly as the user gave it on the command line.
    public var path: String
    public var line: Int
    public var column: Int

    public init(path: String, line: Int, column: Int) {
        self.path = path
        self.line = line
        self.column = column
    }

    public static func < (a: SourceLocation, b: SourceLocation) -> Bool {
        (a.path, a.line, a.column) < (b.path, b.line, b.column)
    }

    public var description: String { "\(path):\(line):\(column)" }
}

public enum Severity: String, Sendable, Comparable {
    case error, warning, note

    private var rank: Int { self == .error ? 0 : self == .warning ? 1 : 2 }
    public static func < (a: Severity, b: Severity) -> Bool { a.rank < b.rank }
}

/// A problem (or remark) about a user's input: a value, never a thrown string
/// (STYLE.md). Printed as `path:line:column: severity: message`.
public struct Diagnostic: Hashable, Sendable, CustomStringConvertible {
    public var severity: Severity
    public var location: SourceLocation
    public var message: String

    public init(_ severity: Severity, at location: SourceLocation, _ message: String) {
        self.severity = severity
        self.location = location
        self.message = message
    }

    public var description: String { "\(location): \(severity.rawValue): \(message)" }
}

/// Collects diagnostics of one run; `sorted` gives the order they are printed in:
/// by file, line, column, then severity and message, so output is deterministic.
/// Messages compare numbers by value ("layer 9" before "layer 10").
public struct DiagnosticCollector: Sendable {
    public private(set) var diagnostics: [Diagnostic] = []

    public init() {}

    public mutating func emit(_ diagnostic: Diagnostic) { diagnostics.append(diagnostic) }

    public mutating func error(_ message: String, at location: SourceLocation) {
        emit(Diagnostic(.error, at: location, message))
    }

    public mutating func warning(_ message: String, at location: SourceLocation) {
        emit(Diagnostic(.warning, at: location, message))
    }

    public mutating func note(_ message: String, at location: SourceLocation) {
        emit(Diagnostic(.note, at: location, message))
    }

    public mutating func append(contentsOf other: DiagnosticCollector) {
        diagnostics.append(contentsOf: other.diagnostics)
    }

    public var hasErrors: Bool { diagnostics.contains { $0.severity == .error } }

    public var sorted: [Diagnostic] {
        var seen = Set<Diagnostic>()
        return diagnostics.filter { seen.insert($0).inserted }.sorted {
            if $0.location != $1.location { return $0.location < $1.location }
            if $0.severity != $1.severity { return $0.severity < $1.severity }
            return NumericOrder.precedes($0.message, $1.message)
        }
    }
}

/// A user error outside a spec (files, arguments): printed `adaptc: error: MESSAGE`, exit 1.
public struct UserError: Error, CustomStringConvertible, Sendable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Spec problems found while running a command: printed one per line, exit 1.
public struct SpecErrors: Error, Sendable {
    public var diagnostics: [Diagnostic]
    public init(_ diagnostics: [Diagnostic]) { self.diagnostics = diagnostics }
}

/// Text order in which runs of ASCII digits compare by their value: "layer 9"
/// before "layer 10", "1.up" before "12.down". Ties (e.g. "07" and "7") fall
/// back to plain order, so the order stays total and deterministic.
enum NumericOrder {
    static func precedes(_ a: String, _ b: String) -> Bool {
        var i = a.utf8.makeIterator(), j = b.utf8.makeIterator()
        var x = i.next(), y = j.next()
        while let p = x, let q = y {
            if isDigit(p) && isDigit(q) {
                var left: [UInt8] = [], right: [UInt8] = []
                while let d = x, isDigit(d) { left.append(d); x = i.next() }
                while let d = y, isDigit(d) { right.append(d); y = j.next() }
                let l = left.drop { $0 == UInt8(ascii: "0") }, r = right.drop { $0 == UInt8(ascii: "0") }
                if l.count != r.count { return l.count < r.count }
                if !l.elementsEqual(r) { return l.lexicographicallyPrecedes(r) }
                continue
            }
            if p != q { return p < q }
            x = i.next()
            y = j.next()
        }
        if (x == nil) != (y == nil) { return x == nil }
        return a < b
    }

    private static func isDigit(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") }
}
