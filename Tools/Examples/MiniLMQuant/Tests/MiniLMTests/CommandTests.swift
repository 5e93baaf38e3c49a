import Foundation
import XCTest

/// `MiniLMQuant embed` as a user runs it: JSON lines on stdout; bad input is
/// one line on stderr, exit 1, and nothing on stdout.
final class CommandTests: XCTestCase {
    struct Run {
        let status: Int32
        let stdout: Data
        let stderr: String
    }

    /// The app, built beside this test bundle (the test target depends on it).
    static var executable: String {
        var folder = URL(fileURLWithPath: CommandLine.arguments[0])
        while folder.pathComponents.count > 1 && !FileManager.default.isExecutableFile(atPath: folder.appendingPathComponent("MiniLMQuant").path) {
            folder.deleteLastPathComponent()
        }
        return folder.appendingPathComponent("MiniLMQuant").path
    }

    func run(_ arguments: [String], stdin: Data) throws -> Run {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.executable)
        process.arguments = arguments
        let input = Pipe(), output = Pipe(), errors = Pipe()
        process.standardInput = input
        process.standardOutput = output
        process.standardError = errors
        try process.run()
        input.fileHandleForWriting.write(stdin)
        try input.fileHandleForWriting.close()
        let stdout = output.fileHandleForReading.readDataToEndOfFile()
        let stderr = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Run(status: process.terminationStatus, stdout: stdout, stderr: String(decoding: stderr, as: UTF8.self))
    }

    func testEmbedPrintsOneArrayPerLine() throws {
        let reference = try TestFiles.decode(ReferenceEmbeddings.self, "embeddings.json").sentences
        let input = reference.map(\.text).joined(separator: "\n") + "\n\nlast line without a newline"
        let run = try run(["embed", "--model", TestFiles.checkpointFolder, "--threads", "2", "--batch", "3", "--max-tokens", "256"],
                          stdin: Data(input.utf8))
        XCTAssertEqual(run.status, 0, run.stderr)
        let lines = String(decoding: run.stdout, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
        XCTAssertEqual(lines.count, reference.count + 3)   // + the empty line, the last line, and the final "\n"
        XCTAssertEqual(lines.last, "")
        for (index, line) in lines.dropLast().enumerated() {
            let array = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [NSNumber]
            XCTAssertEqual(array?.count, 384, "line \(index + 1)")
            if index < reference.count, let array {
                XCTAssertGreaterThanOrEqual(cosine(array.map(\.floatValue), reference[index].embedding), 0.9999, "line \(index + 1)")
            }
        }
    }

    func testInvalidUTF8IsOneLineExit1NothingWritten() throws {
        let input = Data("fine\n".utf8) + Data([0x61, 0xC3, 0x28, 0x0A]) + Data("fine again\n".utf8)
        let run = try run(["embed", "--model", TestFiles.checkpointFolder], stdin: input)
        XCTAssertEqual(run.status, 1)
        XCTAssertEqual(run.stdout.count, 0)
        XCTAssertEqual(run.stderr, "MiniLMQuant: error: stdin:2: not valid UTF-8\n")
    }

    func testBadCheckpointIsOneLineExit1NothingWritten() throws {
        let folder = TinyCheckpoint.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        for omitting in ["vocab.txt", "encoder.layer.0.output.dense.bias"] {
            try TinyCheckpoint.write(to: folder, omitting: omitting)
            let run = try run(["embed", "--model", folder], stdin: Data("a b\n".utf8))
            XCTAssertEqual(run.status, 1, omitting)
            XCTAssertEqual(run.stdout.count, 0, omitting)
            XCTAssertEqual(run.stderr.filter { $0 == "\n" }.count, 1, run.stderr)
            XCTAssertTrue(run.stderr.hasPrefix("MiniLMQuant: error: \(folder)/"), run.stderr)
            XCTAssertTrue(run.stderr.contains(omitting == "vocab.txt" ? "vocab.txt" : "missing tensor '\(omitting)'"), run.stderr)
            try FileManager.default.removeItem(atPath: folder)
        }
        let run = try run(["embed", "--model", folder + "/nowhere"], stdin: Data("a\n".utf8))
        XCTAssertEqual(run.status, 1)
        XCTAssertEqual(run.stdout.count, 0)
    }
}
