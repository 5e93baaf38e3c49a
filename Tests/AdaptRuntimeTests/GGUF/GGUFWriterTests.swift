import XCTest
import AdaptRuntime
import AdaptTestSupport

/// The GGUF writer against bytes spelled out by hand from the format
/// (gguf-py's `GGUFWriter`, ggml's `gguf.h`), and every value type through
/// the test-only reader.
final class GGUFWriterTests: XCTestCase {
    private func u32(_ v: UInt32) -> [UInt8] { withUnsafeBytes(of: v.littleEndian, Array.init) }
    private func u64(_ v: UInt64) -> [UInt8] { withUnsafeBytes(of: v.littleEndian, Array.init) }
    private func str(_ s: String) -> [UInt8] { u64(UInt64(s.utf8.count)) + Array(s.utf8) }

    func testBytesOfASmallFile() throws {
        var writer = GGUFWriter()
        writer.add("a", .float32(1.5))
        writer.add("b", .array(.uint16, [.uint16(7), .uint16(9)]))
        // shape [2, 3] row-major: ggml ne = [3, 2].
        writer.add(tensor: "t", shape: [2, 3], type: .f16, bytes: [UInt8](1...12))
        writer.add(tensor: "u", shape: [1], type: .f32, bytes: [0, 0, 0x80, 0x3F])
        var expected: [UInt8] = [0x47, 0x47, 0x55, 0x46] + u32(3) + u64(2) + u64(2)
        expected += str("a") + u32(6) + [0x00, 0x00, 0xC0, 0x3F]
        expected += str("b") + u32(9) + u32(2) + u64(2) + [7, 0, 9, 0]
        expected += str("t") + u32(2) + u64(3) + u64(2) + u32(1) + u64(0)
        expected += str("u") + u32(1) + u64(1) + u32(0) + u64(32)
        let dataStart = (expected.count + 31) / 32 * 32
        expected += [UInt8](repeating: 0, count: dataStart - expected.count)
        expected += [UInt8](1...12) + [UInt8](repeating: 0, count: 20)
        expected += [0, 0, 0x80, 0x3F] + [UInt8](repeating: 0, count: 28)
        XCTAssertEqual(writer.encoded(), expected)
    }

    func testEveryValueTypeReadsBack() throws {
        var writer = GGUFWriter(alignment: 64)
        writer.add("general.alignment", .uint32(64))
        let values: [(String, GGUFValue, GGUFReader.Value)] = [
            ("u8", .uint8(200), .unsigned(200, type: 0)), ("i8", .int8(-100), .signed(-100, type: 1)),
            ("u16", .uint16(60000), .unsigned(60000, type: 2)), ("i16", .int16(-30000), .signed(-30000, type: 3)),
            ("u32", .uint32(4_000_000_000), .unsigned(4_000_000_000, type: 4)), ("i32", .int32(-2_000_000_000), .signed(-2_000_000_000, type: 5)),
            ("f32", .float32(-0.25), .float(-0.25, type: 6)), ("t", .bool(true), .bool(true)), ("f", .bool(false), .bool(false)),
            ("s", .string("héllo"), .string("héllo")), ("u64", .uint64(1 << 60), .unsigned(1 << 60, type: 10)),
            ("i64", .int64(-(1 << 60)), .signed(-(1 << 60), type: 11)), ("f64", .float64(0.1), .float(0.1, type: 12)),
            ("strings", .array(.string, [.string("x"), .string("")]), .array(elementType: 8, [.string("x"), .string("")])),
            ("empty", .array(.int32, []), .array(elementType: 5, [])),
        ]
        for (key, value, _) in values { writer.add(key, value) }
        writer.add(tensor: "w", shape: [3, 5], type: .f32, bytes: [UInt8](repeating: 0x3F, count: 60))
        writer.add(tensor: "v", shape: [7], type: .f16, bytes: [UInt8](repeating: 0x3C, count: 14))
        let file = try GGUFReader(bytes: writer.encoded())
        XCTAssertEqual(file.alignment, 64)
        XCTAssertEqual(file.value("general.alignment"), .unsigned(64, type: 4))
        for (key, _, read) in values { XCTAssertEqual(file.value(key), read, key) }
        XCTAssertEqual(file.tensors.map(\.name), ["w", "v"])
        XCTAssertEqual(file.tensors.map(\.ne), [[5, 3], [7]])
        XCTAssertEqual(file.tensors.map(\.offset), [0, 64])
        XCTAssertEqual(file.tensor("v")?.floats, [Float](repeating: Float(Float16(bitPattern: 0x3C3C)), count: 7))
    }

    func testReaderRejectsDamage() throws {
        var writer = GGUFWriter()
        writer.add(tensor: "w", shape: [2, 2], type: .f32, bytes: [UInt8](repeating: 0, count: 16))
        let good = writer.encoded()
        XCTAssertNoThrow(try GGUFReader(bytes: good))
        XCTAssertThrowsError(try GGUFReader(bytes: Array(good.dropLast())))
        XCTAssertThrowsError(try GGUFReader(bytes: good + [0]))
        var version = good
        version[4] = 2
        XCTAssertThrowsError(try GGUFReader(bytes: version))
    }
}
