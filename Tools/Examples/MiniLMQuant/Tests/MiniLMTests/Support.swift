import Foundation
import MiniLM
import XCTest

/// Where the tests find their fixtures and the checkpoint.
enum TestFiles {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures").path
    /// The repository root: Tools/Examples/MiniLMQuant/Tests/MiniLMTests/ is five folders below it.
    static let repository = (0..<6).reduce(URL(fileURLWithPath: #filePath)) { url, _ in url.deletingLastPathComponent() }.path
    static let checkpointFolder = ProcessInfo.processInfo.environment["ADAPTC_MINILM_CACHE"].map {
        $0.hasPrefix("/") ? $0 : repository + "/" + $0
    } ?? repository + "/.build/minilm"

    /// all-MiniLM-L6-v2, loaded once; the tests fail (never skip) without it.
    static let checkpoint: Checkpoint? = try? Checkpoint.load(folder: checkpointFolder, threads: 2)

    static func loadCheckpoint(file: StaticString = #filePath, line: UInt = #line) throws -> Checkpoint {
        guard let checkpoint else {
            XCTFail("no checkpoint at \(checkpointFolder): run Tools/fetch-minilm (Tools/example does)", file: file, line: line)
            throw CheckpointError("no checkpoint")
        }
        return checkpoint
    }

    static func decode<T: Decodable>(_ type: T.Type, _ name: String) throws -> T {
        try JSONDecoder().decode(type, from: Data(contentsOf: URL(fileURLWithPath: fixtures + "/" + name)))
    }
}

/// A sentence with PyTorch's ids and embedding (embeddings.json, extra-embeddings.json).
struct ReferenceSentence: Decodable {
    let text: String
    let input_ids: [Int32]
    let embedding: [Float]
}

struct ReferenceEmbeddings: Decodable {
    let sentences: [ReferenceSentence]

    /// The shared fixture at 256 tokens (as it was computed), the extra one at 512.
    static func all() throws -> [(sentence: ReferenceSentence, maximumTokens: Int)] {
        try TestFiles.decode(ReferenceEmbeddings.self, "embeddings.json").sentences.map { ($0, 256) }
            + TestFiles.decode(ReferenceEmbeddings.self, "extra-embeddings.json").sentences.map { ($0, 512) }
    }
}

/// cos(a, b) in Double.
func cosine(_ a: [Float], _ b: [Float]) -> Double {
    precondition(a.count == b.count)
    var dot = 0.0, aa = 0.0, bb = 0.0
    for (x, y) in zip(a, b) {
        dot += Double(x) * Double(y)
        aa += Double(x) * Double(x)
        bb += Double(y) * Double(y)
    }
    return dot / (aa * bb).squareRoot()
}

/// A string with its control and non-ASCII characters escaped, for failure messages.
func escaped(_ text: String) -> String {
    text.unicodeScalars.map { $0.isASCII && $0.value >= 0x20 && $0.value < 0x7F ? String($0) : "\\u{\(String($0.value, radix: 16))}" }.joined()
}
