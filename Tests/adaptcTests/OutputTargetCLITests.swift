import AdaptRuntime
import AdaptcCore
import Foundation
import XCTest

/// What `-o` may replace, end to end (OutputDestination): `/dev/stdout`,
/// `/dev/null`, a FIFO and a symlink are written as careful tools write them; a
/// folder is refused with one line and exit 1.
final class OutputTargetCLITests: XCTestCase {
    private var sandbox: CLISandbox!

    override func setUpWithError() throws {
        sandbox = try CLISandbox()
        try sandbox.copySpec("tiny-qv.adapt.yaml")
        let initialized = try sandbox.adaptc("init", "tiny-qv.adapt.yaml", "-o", "adapter.safetensors", "--seed", "3")
        XCTAssertEqual(initialized.status, 0, "\(initialized)")
        // B is zero after init: give it values so ΔW is not all zeros.
        _ = try writeRandomAdapter(TinyQv.pairs, checked: SpecLoader.load(path: sandbox.path("tiny-qv.adapt.yaml")),
                               to: sandbox.path("adapter.safetensors"), seed: 5)
    }

    override func tearDown() { sandbox?.remove() }

    private func materialize(_ output: String) throws -> CLIResult {
        try sandbox.adaptc("materialize", "tiny-qv.adapt.yaml", "--adapter", "adapter.safetensors", "-o", output)
    }

    func testDevStdoutReceivesTheFileAndTheSummaryGoesToStderr() throws {
        let reference = try materialize("reference.safetensors")
        XCTAssertEqual(reference.status, 0, "\(reference)")
        let streamed = try materialize("/dev/stdout")
        XCTAssertEqual(streamed.status, 0, "\(streamed)")
        let expected = try sandbox.bytes("reference.safetensors")
        XCTAssertTrue(streamed.stdoutBytes == expected,
                      "stdout must hold exactly the safetensors bytes (\(streamed.stdoutBytes.count) bytes, expected \(expected.count))")
        XCTAssertEqual(streamed.stderrLines, ["materialize: 8 pairs → /dev/stdout"])
    }

    func testDevNullStaysACharacterDevice() throws {
        var before = stat(), after = stat()
        XCTAssertEqual(stat("/dev/null", &before), 0)
        let result = try sandbox.adaptc("init", "tiny-qv.adapt.yaml", "-o", "/dev/null")
        XCTAssertEqual(result.status, 0, "\(result)")
        XCTAssertEqual(stat("/dev/null", &after), 0)
        XCTAssertEqual(after.st_mode & S_IFMT, S_IFCHR, "/dev/null was replaced")
        XCTAssertEqual(after.st_rdev, before.st_rdev)
        XCTAssertEqual(after.st_ino, before.st_ino)
    }

    func testFIFOIsWrittenStraight() throws {
        XCTAssertEqual(try materialize("reference.safetensors").status, 0)
        let fifo = sandbox.path("pipe")
        XCTAssertEqual(mkfifo(fifo, 0o600), 0)
        let received = FIFOReader(fifo)
        let result = try materialize("pipe")
        XCTAssertEqual(result.status, 0, "\(result)")
        let bytes = try received.wait(), expected = try sandbox.bytes("reference.safetensors")
        XCTAssertTrue(bytes == expected, "the FIFO's reader got \(bytes.count) bytes, expected \(expected.count)")
        var status = stat()
        XCTAssertEqual(lstat(fifo, &status), 0)
        XCTAssertEqual(status.st_mode & S_IFMT, S_IFIFO)
    }

    func testSymlinkTargetIsReplacedAndTheLinkKept() throws {
        try sandbox.write("old", to: "out/real.safetensors")
        XCTAssertEqual(symlink("out/real.safetensors", sandbox.path("link.safetensors")), 0)
        let result = try materialize("link.safetensors")
        XCTAssertEqual(result.status, 0, "\(result)")
        let file = try SafetensorsFile.read(path: sandbox.path("out/real.safetensors"))
        XCTAssertEqual(file.tensors.count, 8)
        var status = stat()
        XCTAssertEqual(lstat(sandbox.path("link.safetensors"), &status), 0)
        XCTAssertEqual(status.st_mode & S_IFMT, S_IFLNK)
        XCTAssertEqual(sandbox.listing().filter { $0.contains(".tmp-") }, [])
    }

    func testFolderIsRefusedWithOneLine() throws {
        try FileManager.default.createDirectory(atPath: sandbox.path("folder"), withIntermediateDirectories: false)
        for command in [["init", "tiny-qv.adapt.yaml", "-o", "folder"],
                        ["materialize", "tiny-qv.adapt.yaml", "--adapter", "adapter.safetensors", "-o", "folder"]] {
            let result = try sandbox.adaptc(command)
            XCTAssertEqual(result.status, 1, "\(result)")
            XCTAssertEqual(result.stderrLines,
                           ["adaptc: error: folder: is a folder; only a regular file, a FIFO or a character device can be written"])
        }
        XCTAssertEqual(sandbox.listing(), ["adapter.safetensors", "folder", "tiny-qv.adapt.yaml"])
    }
}

/// Reads a FIFO to EOF on its own thread; `wait()` unblocks it if no writer ever came.
final class FIFOReader: @unchecked Sendable {
    private let path: String
    private var bytes: [UInt8] = []
    private let done = DispatchSemaphore(value: 0)

    init(_ path: String) {
        self.path = path
        Thread { [self] in
            let descriptor = open(path, O_RDONLY)
            var buffer = [UInt8](repeating: 0, count: 65_536)
            while descriptor >= 0 {
                let count = read(descriptor, &buffer, buffer.count)
                if count <= 0 { break }
                bytes.append(contentsOf: buffer[..<count])
            }
            close(descriptor)
            done.signal()
        }.start()
    }

    func wait() throws -> [UInt8] {
        if done.wait(timeout: .now() + 30) == .timedOut {
            // No writer opened the FIFO: open and close one so the reader sees EOF.
            close(open(path, O_WRONLY | O_NONBLOCK))
            XCTAssertEqual(done.wait(timeout: .now() + 10), .success)
        }
        return bytes
    }
}
