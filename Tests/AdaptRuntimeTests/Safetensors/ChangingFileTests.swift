import AdaptRuntime
import Foundation
import XCTest

/// A file truncated, grown or rewritten after its header was checked: every
/// later read is an error naming the file, never a fault (the reader uses
/// `pread`, not a mapping that SIGBUSes when the file shrinks underneath).
final class ChangingFileTests: XCTestCase {
    private var folder: URL!
    private var target: String { folder.appendingPathComponent("t.safetensors").path }

    override func setUpWithError() throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("changing-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        var writer = SafetensorsWriter()
        writer.add("a", floats: (0..<300_000).map(Float.init), shape: [300_000])
        writer.add("b", dtype: .bf16, shape: [4], bytes: [0, 0x3F, 0, 0x40, 0, 0x3F, 0, 0x40])
        writer.add("c", dtype: .u8, shape: [2], bytes: [1, 2])
        try writer.write(to: target)
    }

    override func tearDownWithError() throws {
        try FileManager.default.removeItem(at: folder)
    }

    private func assertError(_ body: () throws -> Any, contains expected: String,
                             file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try body(), file: file, line: line) { error in
            XCTAssertTrue(error is SafetensorsError, "\(error)", file: file, line: line)
            XCTAssertTrue("\(error)".hasPrefix("\(self.target): "), "\(error)", file: file, line: line)
            XCTAssertTrue("\(error)".contains(expected), "\(error)", file: file, line: line)
            XCTAssertFalse("\(error)".contains("\n"), file: file, line: line)
        }
    }

    func testTruncatedAfterOpeningIsAnErrorNotAFault() throws {
        let file = try SafetensorsFile.read(path: target)
        XCTAssertEqual(truncate(target, 4096), 0)
        assertError({ try file.floats("a") }, contains: "the file was truncated while being read")
        assertError({ try file.rawBytes("c") }, contains: "truncated while being read")
        XCTAssertEqual(truncate(target, 0), 0)
        assertError({ try file.floats("b") }, contains: "truncated while being read")
    }

    func testGrownAfterOpeningIsAnError() throws {
        let file = try SafetensorsFile.read(path: target)
        let handle = try XCTUnwrap(FileHandle(forWritingAtPath: target))
        handle.seekToEndOfFile()
        handle.write(Data([1, 2, 3]))
        try handle.close()
        assertError({ try file.floats("b") }, contains: "changed while being read (grown")
    }

    func testRewrittenInPlaceIsAnError() throws {
        let file = try SafetensorsFile.read(path: target)
        XCTAssertEqual(try file.floats("b"), [0.5, 2, 0.5, 2])
        // Same size, new contents and modification time: what an in-place writer leaves.
        var times = [timespec(tv_sec: 12345, tv_nsec: 0), timespec(tv_sec: 12345, tv_nsec: 0)]
        XCTAssertEqual(utimensat(AT_FDCWD, target, &times, 0), 0)
        assertError({ try file.floats("b") }, contains: "changed while being read (rewritten")
    }

    func testReplacedByRenameKeepsReadingTheOldFile() throws {
        // What adaptc's own writers do: the open descriptor still sees the old file.
        let file = try SafetensorsFile.read(path: target)
        var other = SafetensorsWriter()
        other.add("z", floats: [1], shape: [1])
        try other.write(to: target)
        XCTAssertEqual(try file.floats("b"), [0.5, 2, 0.5, 2])
        XCTAssertEqual(try file.floats("a").count, 300_000)
    }
}
