import Yams

/// Turns what Yams throws into one diagnostic at the line and column it names.
enum YAMLSyntaxError {
    static func diagnostic(for error: Error, source: String, path: String) -> Diagnostic {
        func at(_ mark: Mark) -> SourceLocation {
            SourceLocation(path: path, line: max(mark.line, 1), column: max(mark.column, 1))
        }
        let start = SourceLocation(path: path, line: 1, column: 1)
        guard let yamlError = error as? YamlError else {
            return Diagnostic(.error, at: start, "invalid YAML: \(error)")
        }
        switch yamlError {
        case .scanner(let context, let problem, let mark, _),
             .parser(let context, let problem, let mark, _),
             .composer(let context, let problem, let mark, _):
            // libyaml's context says what it was reading ("while scanning a simple key")
            // or what it expected ("expected a single document in the stream").
            var message = "invalid YAML: \(problem)"
            if let context, context.text.hasPrefix("while") {
                message += " (\(context.text), from \(context.mark.line):\(context.mark.column))"
            } else if let context {
                message = "invalid YAML: \(context.text), \(problem)"
            }
            return Diagnostic(.error, at: at(mark), message)
        case .reader(let problem, let offset, _, _):
            let location = offset.map { self.location(ofCharacter: $0, in: source, path: path) } ?? start
            return Diagnostic(.error, at: location, "invalid YAML: \(problem)")
        case .duplicatedKeysInMapping(let duplicates, let context):
            let key = duplicates.first ?? ""
            let first = context.mark
            if let second = secondOccurrence(of: key, after: first, in: source) {
                return Diagnostic(.error, at: SourceLocation(path: path, line: second.line, column: second.column),
                                  "duplicate key '\(key)' (first written at \(first.line):\(first.column))")
            }
            return Diagnostic(.error, at: at(first), "duplicate key '\(key)': it is written more than once in this mapping")
        default:
            return Diagnostic(.error, at: start, "invalid YAML: \(yamlError)")
        }
    }

    /// 1-based line and column of the character at `offset`.
    private static func location(ofCharacter offset: Int, in source: String, path: String) -> SourceLocation {
        var line = 1, column = 1
        for character in source.prefix(offset) {
            if character == "\n" || character == "\r\n" {
                line += 1
                column = 1
            } else {
                column += character.unicodeScalars.count
            }
        }
        return SourceLocation(path: path, line: line, column: column)
    }

    /// Yams reports a duplicated key at its first occurrence; the offending one is
    /// the second. In block style it starts a later line at the same column; in
    /// flow style (`{rank: 1, rank: 2}`) it follows on the same line. Columns count
    /// Unicode scalars, as libyaml's marks do. Nil when neither is found.
    static func secondOccurrence(of key: String, after first: Mark, in source: String) -> (line: Int, column: Int)? {
        let lines = source.split(separator: "\n", omittingEmptySubsequences: false)
            .map { Array($0.unicodeScalars) }
        guard first.line >= 1, first.line <= lines.count, !key.isEmpty else { return nil }
        let spellings = [key, "\"\(key)\"", "'\(key)'"].map { Array($0.unicodeScalars) }

        /// Whether a spelling of the key, then optional spaces and `:`, starts at `column` (0-based).
        func keyStarts(_ line: [Unicode.Scalar], at column: Int) -> Bool {
            for spelling in spellings where column + spelling.count <= line.count {
                guard Array(line[column..<column + spelling.count]) == spelling else { continue }
                var next = column + spelling.count
                while next < line.count, line[next] == " " { next += 1 }
                if next < line.count, line[next] == ":" { return true }
            }
            return false
        }

        let firstLine = lines[first.line - 1]
        let firstColumn = first.column - 1
        // Flow style: later on the same line, after `{`, `,` or a space.
        var column = firstColumn + 1
        while column < firstLine.count {
            let previous = firstLine[column - 1]
            if previous == "{" || previous == "," || previous == " ", keyStarts(firstLine, at: column) {
                return (first.line, column + 1)
            }
            column += 1
        }
        // Block style: a later line with the key at the same column.
        for index in first.line..<lines.count where keyStarts(lines[index], at: firstColumn) {
            let line = lines[index]
            let indent = line[..<min(firstColumn, line.count)]
            // Only indentation (or a list dash) may precede it, or it is another mapping's key.
            if indent.allSatisfy({ $0 == " " || $0 == "-" }) {
                return (index + 1, firstColumn + 1)
            }
        }
        return nil
    }
}
