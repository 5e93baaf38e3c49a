import Foundation

/// Standard input as lines of UTF-8 text, all read and checked before any
/// work starts, so bad input writes nothing.
enum InputLines {
    struct InvalidUTF8: Error, CustomStringConvertible {
        let line: Int
        var description: String { "stdin:\(line): not valid UTF-8" }
    }

    /// Lines split at "\n"; a final line without one counts, an empty input has none.
    static func read(_ data: Data) throws -> [String] {
        var lines: [String] = []
        var pieces = data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
        if pieces.last?.isEmpty == true { pieces.removeLast() }
        for (index, piece) in pieces.enumerated() {
            guard let line = String(validating: piece, as: UTF8.self) else { throw InvalidUTF8(line: index + 1) }
            lines.append(line)
        }
        return lines
    }
}
