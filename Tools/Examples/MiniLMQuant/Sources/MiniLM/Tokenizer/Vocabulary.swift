import Foundation

/// A WordPiece vocabulary: `vocab.txt`, one token a line, the id being the
/// line's index from 0.
///
/// Tokens are keyed by their UTF-8 bytes, not by `String`: Swift's String
/// equality is canonical equivalence, so a decomposed word (NFD, as the
/// normaliser leaves it) would match a precomposed vocabulary entry that
/// `tokenizers`, comparing bytes, does not match.
public struct Vocabulary: Sendable {
    /// The tokens in id order.
    public let tokens: [String]
    private let ids: [[UInt8]: Int32]

    public let unknown: Int32
    public let classifier: Int32
    public let separator: Int32
    public let padding: Int32
    /// The special tokens that are recognised in raw text (`[MASK]` → its id),
    /// as transformers' added tokens are, longest first.
    let specialTokens: [(scalars: [Unicode.Scalar], id: Int32)]

    public init(tokens: [String], source: String = "vocabulary") throws {
        var ids: [[UInt8]: Int32] = [:]
        ids.reserveCapacity(tokens.count)
        for (index, token) in tokens.enumerated() {
            ids[Array(token.utf8)] = Int32(index)   // a repeated token keeps its last line, as transformers does
        }
        func required(_ token: String) throws -> Int32 {
            guard let id = ids[Array(token.utf8)] else {
                throw CheckpointError("\(source): the vocabulary has no \(token) token")
            }
            return id
        }
        self.tokens = tokens
        self.ids = ids
        unknown = try required("[UNK]")
        classifier = try required("[CLS]")
        separator = try required("[SEP]")
        padding = try required("[PAD]")
        specialTokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"].compactMap { token in
            ids[Array(token.utf8)].map { (Array(token.unicodeScalars), $0) }
        }.sorted { $0.scalars.count > $1.scalars.count }
    }

    /// Reads `vocab.txt`: UTF-8, lines split at "\n" (a "\r" before it is dropped).
    public static func read(path: String) throws -> Vocabulary {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw CheckpointError("\(path): cannot read the vocabulary (missing or unreadable)")
        }
        guard let text = String(validating: data, as: UTF8.self) else {
            throw CheckpointError("\(path): not valid UTF-8")
        }
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map { line in
            line.hasSuffix("\r") ? String(line.dropLast()) : String(line)
        }
        if lines.last == "" { lines.removeLast() }
        return try Vocabulary(tokens: lines, source: path)
    }

    public var count: Int { tokens.count }

    /// The id of the token whose UTF-8 bytes are `bytes`.
    func id(utf8 bytes: [UInt8]) -> Int32? { ids[bytes] }
}
