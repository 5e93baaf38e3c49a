import XCTest
import Foundation
@testable import AdaptcCore
import AdaptRuntime

/// SmallFile, behind the spec, adapter_config.json and sharded-index readers:
/// it reads at most limit + 1 bytes, so a huge file, /dev/zero or an endless
/// FIFO is a one-line error, not a hang or a full memory (found by
/// `Tools/fuzz peft-config`: FileManager's whole-file read, which also leaked
/// a buffer for an empty file).
final class SmallFileTests: XCTestCase {
    var folder: String!

    override func setUpWithError() throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("smallfile-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        if let folder { try? FileManager.default.removeItem(atPath: folder) }
    }

    private func failure(_ path: String, limit: Int) -> SmallFile.Failure? {
        do throws(SmallFile.Failure) {
            _ = try SmallFile.read(path, limit: limit)
            return nil
        } catch {
            return error
        }
    }

    func testReadsSmallAndEmptyFilesWhole() throws {
        XCTAssertTrue(FileManager.default.createFile(atPath: folder + "/empty", contents: Data()))
        XCTAssertEqual(try SmallFile.read(folder + "/empty", limit: 10), [])
        let bytes = (0..<200_000).map { UInt8($0 % 251) }
        XCTAssertTrue(FileManager.default.createFile(atPath: folder + "/some", contents: Data(bytes)))
        XCTAssertEqual(try SmallFile.read(folder + "/some", limit: 200_000), bytes)
        guard case .tooLarge(200_000)? = failure(folder + "/some", limit: 199_999) else { return XCTFail("one byte over the limit read") }
    }

    func testRefusesAHugeFileWithoutReadingIt() throws {
        // 64 GiB, sparse: reading it whole would need the memory.
        let path = folder + "/huge"
        XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: nil))
        XCTAssertEqual(truncate(path, 64 << 30), 0)
        guard case .tooLarge(64 << 30)? = failure(path, limit: 16 << 20) else { return XCTFail("a 64 GiB file was not refused by its size") }
    }

    func testRefusesEndlessStreams() throws {
        guard case .tooLarge(let bytes)? = failure("/dev/zero", limit: 1 << 20) else { return XCTFail("/dev/zero read") }
        XCTAssertEqual(bytes, (1 << 20) + 1)
        // A FIFO whose writer never stops: read until one byte past the limit.
        let fifo = folder + "/fifo"
        XCTAssertEqual(mkfifo(fifo, 0o600), 0)
        let writer = Thread {
            let descriptor = open(fifo, O_WRONLY)
            let chunk = [UInt8](repeating: 7, count: 4096)
            while chunk.withUnsafeBytes({ write(descriptor, $0.baseAddress!, $0.count) }) > 0 {}
            close(descriptor)
        }
        signal(SIGPIPE, SIG_IGN)
        writer.start()
        guard case .tooLarge(100_001)? = failure(fifo, limit: 100_000) else { return XCTFail("an endless FIFO was not refused") }
    }

    func testMissingFilesAndFoldersAreUnreadable() {
        guard case .unreadable? = failure(folder + "/missing", limit: 10) else { return XCTFail("a missing file read") }
        guard case .unreadable("is a folder")? = failure(folder, limit: 10) else { return XCTFail("a folder read") }
    }

    /// The three readers: a file that never ends is one line naming it, promptly.
    func testReadersRefuseAnEndlessFile() throws {
        let peft = folder + "/peft", base = folder + "/base"
        for path in [peft, base] { try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true) }
        try FileManager.default.createSymbolicLink(atPath: peft + "/adapter_config.json", withDestinationPath: "/dev/zero")
        try FileManager.default.createSymbolicLink(atPath: base + "/" + BaseCheckpoint.indexName, withDestinationPath: "/dev/zero")
        try FileManager.default.createSymbolicLink(atPath: folder + "/zero.adapt.yaml", withDestinationPath: "/dev/zero")
        XCTAssertThrowsError(try PEFTConfig.read(peft + "/adapter_config.json")) {
            XCTAssertEqual("\($0)", "\(peft)/adapter_config.json: not a UTF-8 JSON file of at most 16 MiB")
        }
        XCTAssertThrowsError(try BaseCheckpoint.open(base)) {
            XCTAssertEqual("\($0)", "\(base)/\(BaseCheckpoint.indexName): 100000001 bytes or more; an index is at most 100 MB")
        }
        XCTAssertThrowsError(try SpecLoader.readText(folder + "/zero.adapt.yaml")) {
            XCTAssertEqual("\($0)", "\(folder!)/zero.adapt.yaml: 16777217 bytes or more; a spec is at most 16 MiB")
        }
        // An empty config is invalid JSON, said in one line (no leak under the fuzzer's ASan).
        try FileManager.default.removeItem(atPath: peft + "/adapter_config.json")
        XCTAssertTrue(FileManager.default.createFile(atPath: peft + "/adapter_config.json", contents: Data()))
        XCTAssertThrowsError(try PEFTConfig.read(peft + "/adapter_config.json")) {
            XCTAssertTrue("\($0)".hasPrefix("\(peft)/adapter_config.json: not valid JSON"), "\($0)")
        }
    }
}
