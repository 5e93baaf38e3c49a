import AdaptRuntime
import Foundation

/// Reads, parses and checks one spec file: the front half of every command.
public enum SpecLoader {
    /// Parse + Check. Throws `SpecErrors` (all diagnostics, errors included) when
    /// the spec has errors; otherwise returns it with its warnings and notes.
    public static func load(path: String) throws -> CheckedSpec {
        let source = try readText(path)
        return try check(source: source, path: path)
    }

    public static func check(source: String, path: String) throws -> CheckedSpec {
        let (spec, parseDiagnostics) = SpecParser.parse(source: source, path: path)
        guard let spec, !parseDiagnostics.contains(where: { $0.severity == .error }) else {
            throw SpecErrors(sortedDiagnostics(parseDiagnostics))
        }
        let (checked, checkDiagnostics) = SpecChecker.check(spec)
        let all = sortedDiagnostics(parseDiagnostics + checkDiagnostics)
        guard var checked else { throw SpecErrors(all) }
        checked.diagnostics = all
        return checked
    }

    /// Check followed by Plan: plan-stage errors ("not supported yet") are spec errors too.
    public static func loadPlanned(path: String) throws -> (CheckedSpec, Plan) {
        let checked = try load(path: path)
        let (plan, diagnostics) = Planner.plan(checked)
        guard let plan else { throw SpecErrors(sortedDiagnostics(checked.diagnostics + diagnostics)) }
        return (checked, plan)
    }

    static func sortedDiagnostics(_ diagnostics: [Diagnostic]) -> [Diagnostic] {
        var collector = DiagnosticCollector()
        diagnostics.forEach { collector.emit($0) }
        return collector.sorted
    }

    static func readText(_ path: String) throws -> String {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw UserError("\(path): no such file")
        }
        guard !isDirectory.boolValue else { throw UserError("\(path): is a folder, expected a spec file") }
        let data: [UInt8]
        do throws(SmallFile.Failure) {
            data = try SmallFile.read(path, limit: 16 << 20)
        } catch .unreadable(let reason) {
            throw UserError("\(path): cannot read: \(reason)")
        } catch .tooLarge(let bytes) {
            throw UserError("\(path): \(bytes) bytes or more; a spec is at most 16 MiB")
        }
        guard let text = String(data: Data(data), encoding: .utf8) else {
            let (line, column) = firstInvalidUTF8(data)
            throw SpecErrors([Diagnostic(.error, at: SourceLocation(path: path, line: line, column: column),
                                         "the spec is not valid UTF-8 here")])
        }
        return text
    }

    /// Line and column (1-based, in characters) of the first byte that is not UTF-8.
    static func firstInvalidUTF8(_ bytes: [UInt8]) -> (line: Int, column: Int) {
        var iterator = bytes.makeIterator()
        var decoder = UTF8()
        var (line, column) = (1, 1)
        while true {
            switch decoder.decode(&iterator) {
            case .scalarValue(let scalar):
                if scalar == "\n" { (line, column) = (line + 1, 1) } else { column += 1 }
            case .emptyInput, .error:
                return (line, column)
            }
        }
    }
}
