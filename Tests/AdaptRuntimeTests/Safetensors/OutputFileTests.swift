import AdaptRuntime
import Foundation
import XCTest

/// What `-o` may replace (OutputDestination) and how OutputFile writes it:
/// regular files and symlink targets atomically, devices and FIFOs straight,
/// folders and other special files refused.
final class OutputFileTests: XCTestCase {
    private var folder: URL!

    override func setUpWithError() throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("output-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try FileManager.default.removeItem(at: folder)
    }

    private func path(_ name: String) -> String { folder.appendingPathComponent(name).path }

    private func contents(_ name: String) throws -> [UInt8] {
        [UInt8](try Data(contentsOf: URL(fileURLWithPath: path(name))))
    }

    private func listing() throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: folder.path).sorted()
    }

    private func fileType(_ path: String) -> mode_t {
        var status = stat()
        XCTAssertEqual(lstat(path, &status), 0, path)
        return status.st_mode & S_IFMT
    }

    func testCharacterDeviceIsWrittenStraightAndStaysADevice() throws {
        XCTAssertEqual(try OutputDestination.resolve("/dev/null"), .stream(path: "/dev/null", append: false))
        try AtomicFile.write([UInt8](repeating: 7, count: 100_000), to: "/dev/null")
        XCTAssertEqual(fileType("/dev/null"), S_IFCHR)
        var stream = SafetensorsWriter()
        stream.add("w", floats: [1, 2, 3], shape: [3])
        try stream.write(to: "/dev/null")
        XCTAssertEqual(fileType("/dev/null"), S_IFCHR)
    }

    func testFIFOIsWrittenStraightAndStaysAFIFO() throws {
        let fifo = path("pipe")
        XCTAssertEqual(mkfifo(fifo, 0o600), 0)
        XCTAssertEqual(try OutputDestination.resolve(fifo), .stream(path: fifo, append: false))
        var writer = SafetensorsWriter(metadata: ["k": "v"])
        writer.add("w", floats: (0..<50_000).map(Float.init), shape: [50_000])  // more than a pipe buffer holds
        let expected = try writer.encoded()

        // The reader must be there before the writer's open returns; it reads until EOF.
        let received = ReceivedBytes()
        let reader = Thread {
            let descriptor = open(fifo, O_RDONLY)
            var buffer = [UInt8](repeating: 0, count: 65_536)
            while descriptor >= 0 {
                let count = read(descriptor, &buffer, buffer.count)
                if count <= 0 { break }
                received.append(buffer[..<count])
            }
            close(descriptor)
            received.done.signal()
        }
        reader.start()
        try writer.write(to: fifo)
        XCTAssertEqual(received.done.wait(timeout: .now() + 30), .success, "the reader never saw EOF")
        XCTAssertEqual(received.bytes, expected)
        XCTAssertEqual(fileType(fifo), S_IFIFO)
        XCTAssertEqual(try listing(), ["pipe"])
    }

    func testSymlinkIsFollowedAndItsTargetReplacedAtomically() throws {
        try AtomicFile.write([1, 2, 3], to: path("real.bin"))
        XCTAssertEqual(chmod(path("real.bin"), 0o640), 0)
        XCTAssertEqual(symlink("real.bin", path("link.bin")), 0)
        XCTAssertEqual(symlink(path("link.bin"), path("link2.bin")), 0)  // absolute, and a chain
        XCTAssertEqual(try OutputDestination.resolve(path("link2.bin")), .replace(path: path("real.bin"), mode: 0o640))

        try AtomicFile.write([4, 5], to: path("link2.bin"))
        XCTAssertEqual(fileType(path("link.bin")), S_IFLNK)
        XCTAssertEqual(fileType(path("link2.bin")), S_IFLNK)
        XCTAssertEqual(try contents("real.bin"), [4, 5])
        // The replacement keeps the permissions of the file it replaced.
        XCTAssertEqual(try FileManager.default.attributesOfItem(atPath: path("real.bin"))[.posixPermissions] as? Int, 0o640)
        XCTAssertEqual(try listing(), ["link.bin", "link2.bin", "real.bin"])
    }

    func testDanglingSymlinkCreatesItsTarget() throws {
        try FileManager.default.createDirectory(atPath: path("sub"), withIntermediateDirectories: false)
        XCTAssertEqual(symlink("sub/new.bin", path("dangling")), 0)
        try AtomicFile.write([9], to: path("dangling"))
        XCTAssertEqual(fileType(path("dangling")), S_IFLNK)
        XCTAssertEqual(try contents("sub/new.bin"), [9])
    }

    func testSymlinkLoopFolderAndSocketAreRefusedWithOneLine() throws {
        XCTAssertEqual(symlink("b", path("a")), 0)
        XCTAssertEqual(symlink("a", path("b")), 0)
        XCTAssertThrowsError(try AtomicFile.write([1], to: path("a"))) { error in
            XCTAssertEqual("\(error)", "\(path("a")): cannot write: more than 40 symbolic links to follow (a loop?)")
        }
        try FileManager.default.createDirectory(atPath: path("dir"), withIntermediateDirectories: false)
        XCTAssertEqual(symlink("dir", path("to-dir")), 0)
        for target in [path("dir"), path("to-dir")] {
            XCTAssertThrowsError(try AtomicFile.write([1], to: target)) { error in
                XCTAssertEqual("\(error)", "\(target): is a folder; only a regular file, a FIFO or a character device can be written")
            }
        }
        // A socket: bound by a listening Unix socket.
        let socketPath = path("sock")
        let socketDescriptor = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(socketDescriptor) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, byte) in socketPath.utf8.prefix(raw.count - 1).enumerated() { raw[i] = byte }
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(socketDescriptor, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        XCTAssertEqual(bound, 0)
        XCTAssertThrowsError(try AtomicFile.write([1], to: socketPath)) { error in
            XCTAssertEqual("\(error)", "\(socketPath): is a socket; only a regular file, a FIFO or a character device can be written")
        }
        XCTAssertEqual(fileType(socketPath), S_IFSOCK)
        XCTAssertEqual(try listing(), ["a", "b", "dir", "sock", "to-dir"])
    }

    func testDescriptorLinksAreStreams() throws {
        // /dev/stdout leads to /proc/self/fd/1, whose text may be "pipe:[…]": never a path to rename over.
        guard case .stream(let stdout, _) = try OutputDestination.resolve("/dev/stdout") else {
            return XCTFail("/dev/stdout must be written straight")
        }
        XCTAssertEqual(stdout, "/dev/stdout")
        let descriptor = open(path("log"), O_WRONLY | O_CREAT | O_APPEND, 0o644)
        defer { close(descriptor) }
        XCTAssertEqual(write(descriptor, "before\n", 7), 7)
        let link = "/proc/self/fd/\(descriptor)"
        XCTAssertEqual(try OutputDestination.resolve(link), .stream(path: link, append: true))
        try AtomicFile.write(Array("after\n".utf8), to: link)
        XCTAssertEqual(String(decoding: try contents("log"), as: UTF8.self), "before\nafter\n")
        XCTAssertEqual(fileType(path("log")), S_IFREG)
    }

    func testDroppedOutputLeavesThePreviousFileAndNoTemporary() throws {
        try AtomicFile.write([1, 2, 3], to: path("out.bin"))
        do {
            let output = try OutputFile(path: path("out.bin"))
            try output.write([9, 9, 9, 9])
            XCTAssertEqual(try listing().count, 2, "the temporary file exists while writing")
        }
        XCTAssertEqual(try contents("out.bin"), [1, 2, 3])
        XCTAssertEqual(try listing(), ["out.bin"])
    }

    func testStreamWriterMatchesTheBufferedWriterAndChecksOrder() throws {
        var buffered = SafetensorsWriter(metadata: ["adaptc.spec": "X"])
        buffered.add("b", floats: (0..<40_000).map { Float($0) * 0.5 }, shape: [200, 200])
        buffered.add("a", floats: [1, -2], shape: [2])
        buffered.add("c", dtype: .u8, shape: [3], bytes: [7, 8, 9])
        let expected = try buffered.encoded()

        let stream = try SafetensorsStreamWriter(
            path: path("s.safetensors"), metadata: ["adaptc.spec": "X"],
            tensors: [TensorDeclaration(name: "c", dtype: .u8, shape: [3]), TensorDeclaration(name: "b", shape: [200, 200]),
                      TensorDeclaration(name: "a", shape: [2])])
        XCTAssertEqual(stream.order, ["a", "b", "c"])
        XCTAssertThrowsError(try [Float](repeating: 0, count: 40_000).withUnsafeBufferPointer { try stream.append("b", floats: $0) }) {
            XCTAssertEqual("\($0)", "\(self.path("s.safetensors")): tensor \"b\": appended out of order (expected \"a\")")
        }
        try [Float(1), -2].withUnsafeBufferPointer { try stream.append("a", floats: $0) }
        try (0..<40_000).map { Float($0) * 0.5 }.withUnsafeBufferPointer { try stream.append("b", floats: $0) }
        XCTAssertThrowsError(try stream.commit()) {
            XCTAssertEqual("\($0)", "\(self.path("s.safetensors")): tensor \"c\": declared but never appended")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: path("s.safetensors")), "nothing appears before commit")
        try [UInt8]([7, 8, 9]).withUnsafeBytes { try stream.append("c", bytes: $0) }
        try stream.commit()
        XCTAssertEqual(try contents("s.safetensors"), expected)
    }
}

/// Bytes a reader thread collects, with a semaphore for "EOF seen".
private final class ReceivedBytes: @unchecked Sendable {
    private let lock = NSLock()
    private var storage: [UInt8] = []
    let done = DispatchSemaphore(value: 0)

    func append(_ bytes: ArraySlice<UInt8>) {
        lock.lock()
        storage.append(contentsOf: bytes)
        lock.unlock()
    }

    var bytes: [UInt8] {
        lock.lock()
        defer { lock.unlock() }
        return storage
    }
}
