import AdaptRuntime
import Foundation
import XCTest

/// `SafetensorsFile.floats(_:into:threads:)`: tensors of several read chunks,
/// read (`pread`) and widened on two threads into a caller's buffer, give the
/// same values and the same one-line errors as `floats(_:)`.
final class FloatsIntoBufferTests: XCTestCase {
    private var folder: URL!
    private var target: String { folder.appendingPathComponent("t.safetensors").path }
    /// Three read chunks and a partial fourth.
    private let count = 800_001
    /// Exact in F16 and BF16: integers -127…127; the period (255) does not
    /// divide the chunk length, so a chunk read from the wrong offset shows.
    private var values: [Float] { (0..<count).map { Float($0 % 255 - 127) } }

    override func setUpWithError() throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("floats-into-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        var writer = SafetensorsWriter()
        for dtype in [DType.f32, .f16, .bf16] {
            writer.add(dtype.rawValue, dtype: dtype, shape: [count], bytes: FloatNarrowing.bytes(values, as: dtype))
        }
        var poisoned = values
        poisoned[700_000] = .infinity
        poisoned[600_000] = .nan  // later chunks report after earlier ones: the first bad element wins
        writer.add("poisoned", dtype: .bf16, shape: [count], bytes: FloatNarrowing.bytes(poisoned, as: .bf16))
        try writer.write(to: target)
    }

    override func tearDownWithError() throws {
        try FileManager.default.removeItem(at: folder)
    }

    private func read(_ file: SafetensorsFile, _ name: String, threads: Int) throws -> [Float] {
        let entry = try XCTUnwrap(file.entry(name))
        var buffer = [Float](repeating: 42, count: count + 3)
        try buffer.withUnsafeMutableBufferPointer { try file.floats(entry, into: $0, threads: threads) }
        XCTAssertEqual(Array(buffer[count...]), [42, 42, 42], "wrote past the tensor")
        return Array(buffer[..<count])
    }

    func testEveryDTypeOnTwoThreadsMatchesTheStoredValues() throws {
        let file = try SafetensorsFile.read(path: target)
        let expected = values
        for dtype in [DType.f32, .f16, .bf16] {
            XCTAssertEqual(try read(file, dtype.rawValue, threads: 2), expected, dtype.rawValue)
            XCTAssertEqual(try read(file, dtype.rawValue, threads: 1), expected, dtype.rawValue)
            XCTAssertEqual(try file.floats(dtype.rawValue), expected, dtype.rawValue)
        }
    }

    func testFirstNonFiniteElementIsNamed() throws {
        let file = try SafetensorsFile.read(path: target)
        XCTAssertThrowsError(try read(file, "poisoned", threads: 2)) { error in
            XCTAssertEqual("\(error)", "\(self.target): tensor \"poisoned\" contains NaN (element 600000)")
        }
    }

    func testTruncatedUnderneathIsOneLineOnTwoThreads() throws {
        let file = try SafetensorsFile.read(path: target)
        let entry = try XCTUnwrap(file.entry("F32"))
        XCTAssertEqual(truncate(target, off_t(file.fileOffset(of: entry) + 4 * 500_000)), 0)
        XCTAssertThrowsError(try read(file, "F32", threads: 2)) { error in
            XCTAssertTrue(error is SafetensorsError, "\(error)")
            XCTAssertTrue("\(error)".hasPrefix("\(self.target): "), "\(error)")
            XCTAssertTrue("\(error)".contains("truncated"), "\(error)")
            XCTAssertFalse("\(error)".contains("\n"))
        }
    }

    func testFileOffsetPointsAtTheTensorsBytes() throws {
        let file = try SafetensorsFile.read(path: target)
        let entry = try XCTUnwrap(file.entry("F32"))  // not the first tensor: its offset is not 0
        let handle = try XCTUnwrap(FileHandle(forReadingAtPath: target))
        defer { try? handle.close() }
        try handle.seek(toOffset: UInt64(file.fileOffset(of: entry)))
        let bytes = try XCTUnwrap(handle.read(upToCount: 64))
        XCTAssertEqual([UInt8](bytes), try Array(file.rawBytes("F32").prefix(64)))
    }
}
