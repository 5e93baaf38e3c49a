import Foundation
import MiniLM
import XCTest

/// A checkpoint folder that cannot be used is one error naming what is wrong.
final class CheckpointTests: XCTestCase {
    private var folder = ""

    override func setUp() { folder = TinyCheckpoint.temporaryFolder() }
    override func tearDown() { try? FileManager.default.removeItem(atPath: folder) }

    func testTheTinyCheckpointLoadsAndEmbeds() throws {
        try TinyCheckpoint.write(to: folder)
        let checkpoint = try Checkpoint.load(folder: folder)
        let embedding = Encoder(weights: checkpoint.weights, threads: 1).embed([[2, 5, 6, 3]])[0]
        XCTAssertEqual(embedding.count, 4)
        XCTAssertEqual(embedding.reduce(0) { $0 + $1 * $1 }, 1, accuracy: 1e-5)
    }

    func testEachMissingTensorIsNamed() throws {
        for (name, _) in TinyCheckpoint.tensors {
            try TinyCheckpoint.write(to: folder, omitting: name)
            XCTAssertThrowsError(try Checkpoint.load(folder: folder)) { error in
                XCTAssertEqual("\(error)", "\(folder)/model.safetensors: missing tensor '\(name)'")
            }
        }
    }

    func testMissingVocabularyIsNamed() throws {
        try TinyCheckpoint.write(to: folder, omitting: "vocab.txt")
        XCTAssertThrowsError(try Checkpoint.load(folder: folder)) { error in
            XCTAssertEqual("\(error)", "\(folder)/vocab.txt: cannot read the vocabulary (missing or unreadable)")
        }
    }

    func testTruncatedSafetensorsIsAnError() throws {
        try TinyCheckpoint.write(to: folder)
        let path = folder + "/model.safetensors"
        let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        for keep in [0, 7, 20, bytes.count - 1] {
            try bytes.prefix(keep).write(to: URL(fileURLWithPath: path))
            XCTAssertThrowsError(try Checkpoint.load(folder: folder), "\(keep) of \(bytes.count) bytes") { error in
                XCTAssertTrue("\(error)".hasPrefix(path + ":"), "\(error)")
                XCTAssertFalse("\(error)".contains("\n"), "\(error)")
            }
        }
    }

    func testWrongShapeIsNamed() throws {
        try TinyCheckpoint.write(to: folder)
        try TinyCheckpoint.config.replacingOccurrences(of: "\"intermediate_size\": 8", with: "\"intermediate_size\": 6")
            .write(toFile: folder + "/config.json", atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try Checkpoint.load(folder: folder)) { error in
            XCTAssertEqual("\(error)", "\(folder)/model.safetensors: tensor 'encoder.layer.0.intermediate.dense.weight' has shape [8, 4], expected [6, 4]")
        }
    }
}
