import AdaptRuntime
import Foundation
import XCTest

/// Each test builds one broken file byte by byte and checks that reading it
/// fails with a one-line `SafetensorsError` naming the file, the tensor at
/// fault (when there is one) and the rule broken.
final class SafetensorsMalformedTests: XCTestCase {
    private var folder: URL!

    override func setUpWithError() throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("safetensors-bad-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try FileManager.default.removeItem(at: folder)
    }

    private func littleEndian(_ value: UInt64) -> [UInt8] {
        withUnsafeBytes(of: value.littleEndian) { Array($0) }
    }

    /// A file with `header` as its JSON and `dataBytes` bytes of data.
    private func file(_ header: String, dataBytes: Int = 0) -> [UInt8] {
        littleEndian(UInt64(header.utf8.count)) + Array(header.utf8) + [UInt8](repeating: 0, count: dataBytes)
    }

    /// An entry as safetensors writes it.
    private func entry(_ name: String, _ dtype: String = "F32", _ shape: String, _ offsets: String) -> String {
        "\"\(name)\":{\"dtype\":\"\(dtype)\",\"shape\":\(shape),\"data_offsets\":\(offsets)}"
    }

    /// Writes `bytes` as `NAME.safetensors` and expects reading to fail with a
    /// message holding the path and every fragment of `expected`; returns it.
    @discardableResult
    private func assertRejected(
        _ bytes: [UInt8], _ expected: String..., file: StaticString = #filePath, line: UInt = #line,
        function: String = #function
    ) -> String {
        let target = folder.appendingPathComponent(
            "\(function.prefix { $0 != "(" }).safetensors"
        ).path
        XCTAssertTrue(FileManager.default.createFile(atPath: target, contents: Data(bytes)), file: file, line: line)
        return assertRejected(path: target, expected, file: file, line: line)
    }

    @discardableResult
    private func assertRejected(
        path: String, _ expected: [String], file: StaticString = #filePath, line: UInt = #line
    ) -> String {
        do {
            let read = try SafetensorsFile.read(path: path)
            XCTFail("read \(read.tensors.count) tensors from a malformed file", file: file, line: line)
            return ""
        } catch let error as SafetensorsError {
            let message = error.description
            XCTAssertEqual(message, error.message, file: file, line: line)
            XCTAssertTrue(message.hasPrefix("\(path): "), "no path in: \(message)", file: file, line: line)
            XCTAssertFalse(message.contains("\n"), "not one line: \(message)", file: file, line: line)
            for fragment in expected {
                XCTAssertTrue(message.contains(fragment), "\"\(fragment)\" not in: \(message)", file: file, line: line)
            }
            return message
        } catch {
            XCTFail("not a SafetensorsError: \(error)", file: file, line: line)
            return ""
        }
    }

    // MARK: Header length

    func testEmptyFile() {
        assertRejected([], "file is 0 bytes, too short for the 8-byte header length")
    }

    func testTruncatedBelowEightBytes() {
        assertRejected([2, 0, 0, 0, 0], "file is 5 bytes, too short")
    }

    func testHeaderLengthPastTheEnd() {
        assertRejected(
            littleEndian(100) + Array("{}".utf8), "header length 100 runs past the end of the file (10 bytes)")
    }

    func testHeaderLengthOfATerabyteFailsWithoutAllocating() {
        assertRejected(littleEndian(1 << 40) + Array("{}".utf8), "header length 1099511627776 exceeds the limit")
    }

    func testHeaderLengthOver100MBFailsWithoutAllocating() {
        assertRejected(littleEndian(200_000_000) + Array("{}".utf8), "header length 200000000 exceeds the limit")
    }

    func testHeaderLengthThatOverflowsInt() {
        assertRejected(littleEndian(.max) + Array("{}".utf8), "header length 18446744073709551615 exceeds the limit")
    }

    // MARK: JSON

    func testHeaderNotUTF8() {
        let header: [UInt8] = Array("{\"a".utf8) + [0xFF, 0xFE] + Array("\":{}}".utf8)
        assertRejected(littleEndian(UInt64(header.count)) + header, "header is not valid UTF-8")
    }

    func testHeaderWithUTF8EncodedSurrogate() {
        let header: [UInt8] = Array("{\"".utf8) + [0xED, 0xA0, 0x80] + Array("\":{}}".utf8)
        assertRejected(littleEndian(UInt64(header.count)) + header, "header is not valid UTF-8")
    }

    func testHeaderNotJSON() {
        assertRejected(file(#"{"a": }"#), "header is not valid JSON", "at header byte 6")
    }

    func testEmptyHeader() {
        assertRejected(file(""), "header is not valid JSON: expected a value but the header ended")
    }

    func testHeaderIsAnArray() {
        assertRejected(file("[]"), "header is not a JSON object but an array")
    }

    func testTrailingGarbageAfterTheObject() {
        assertRejected(
            file("{} x"), "header is not valid JSON: trailing characters after the JSON value at header byte 3")
    }

    func testPaddingWithNULInsteadOfSpaces() {
        assertRejected(file("{}\0\0\0\0\0\0"), "trailing characters")
    }

    func testDeeplyNestedArraysDoNotCrash() {
        assertRejected(file(String(repeating: "[", count: 10_000)), "nesting deeper than 64 levels")
    }

    func testDeeplyNestedShapeDoesNotCrash() {
        let shape = String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000)
        assertRejected(file("{" + entry("w", "F32", shape, "[0,0]") + "}"), "nesting deeper")
    }

    func testUnterminatedString() {
        assertRejected(file(#"{"w"#), "unterminated string")
    }

    func testUnpairedSurrogateEscape() {
        assertRejected(file(#"{"\ud800x":{}}"#), "unpaired surrogate")
    }

    func testLoneLowSurrogateEscape() {
        assertRejected(file(#"{"\udc00":{}}"#), "unpaired surrogate")
    }

    func testInvalidEscape() {
        assertRejected(file(#"{"\x41":{}}"#), "invalid escape")
    }

    func testRawControlCharacterInString() {
        assertRejected(file("{\"a\tb\":{}}"), "unescaped control character")
    }

    func testNumberWithLeadingZero() {
        assertRejected(file("{" + entry("w", "F32", "[01]", "[0,4]") + "}", dataBytes: 4), "header is not valid JSON")
    }

    func testKeyThatIsNotAString() {
        assertRejected(file("{1:2}"), "expected a string key")
    }

    // MARK: Entries

    func testEntryMissingDtype() {
        let header = #"{"w":{"shape":[2],"data_offsets":[0,8]}}"#
        assertRejected(file(header, dataBytes: 8), #"tensor "w": missing key "dtype""#)
    }

    func testEntryMissingDataOffsets() {
        assertRejected(file(#"{"w":{"dtype":"F32","shape":[0]}}"#), #"tensor "w": missing key "data_offsets""#)
    }

    func testEntryWithExtraKey() {
        let header = #"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"offset":0}}"#
        assertRejected(file(header, dataBytes: 8), #"tensor "w": unexpected key "offset""#)
    }

    func testEntryNotAnObject() {
        assertRejected(file(#"{"w":[1,2]}"#), #"tensor "w": entry must be an object"#)
    }

    func testUnknownDtype() {
        assertRejected(
            file("{" + entry("w", "F4", "[2]", "[0,1]") + "}", dataBytes: 1), #"tensor "w": unknown dtype "F4""#)
    }

    func testLowercaseDtype() {
        assertRejected(file("{" + entry("w", "f32", "[2]", "[0,8]") + "}", dataBytes: 8), #"unknown dtype "f32""#)
    }

    func testLongValueIsShortenedInTheMessage() {
        let dtype = String(repeating: "X", count: 1_000)
        let unknown = assertRejected(
            file("{" + entry("w", dtype, "[]", "[0,4]") + "}", dataBytes: 4),
            #"tensor "w": unknown dtype "XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX…" (expected one of"#)
        XCTAssertLessThan(unknown.count, 300)
        let shape = assertRejected(
            file("{" + entry("w", "F32", "[\"\(dtype)\"]", "[0,4]") + "}", dataBytes: 4),
            #"shape value "XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX…" is not a non-negative integer"#)
        XCTAssertLessThan(shape.count, 300)
    }

    func testDtypeNotAString() {
        let header = #"{"w":{"dtype":4,"shape":[1],"data_offsets":[0,4]}}"#
        assertRejected(file(header, dataBytes: 4), #"tensor "w": dtype must be a string, not 4"#)
    }

    func testShapeWithNegativeDimension() {
        assertRejected(
            file("{" + entry("w", "F32", "[2,-2]", "[0,0]") + "}"),
            #"tensor "w": shape value -2 is not a non-negative integer"#)
    }

    func testShapeWithFloatDimension() {
        assertRejected(
            file("{" + entry("w", "F32", "[2.0]", "[0,8]") + "}", dataBytes: 8),
            #"tensor "w": shape value 2.0 is not a non-negative integer"#)
    }

    func testShapeWithExponentDimension() {
        assertRejected(file("{" + entry("w", "F32", "[2e0]", "[0,8]") + "}", dataBytes: 8), "shape value 2e0")
    }

    func testShapeNotAnArray() {
        assertRejected(
            file("{" + entry("w", "F32", "2", "[0,8]") + "}", dataBytes: 8),
            #"tensor "w": shape must be an array of non-negative integers, not 2"#)
    }

    func testShapeProductOverflow() {
        assertRejected(
            file("{" + entry("w", "F32", "[4294967296,4294967296,16]", "[0,0]") + "}"),
            #"tensor "w": F32 [4294967296, 4294967296, 16] overflows the byte count"#)
    }

    func testHugeDimensionsBesideAZero() {
        // Empty, but a caller multiplying the other dimensions would overflow.
        assertRejected(
            file("{" + entry("w", "F32", "[4294967296,4294967296,0]", "[0,0]") + "}"),
            #"tensor "w": F32 [4294967296, 4294967296, 0] overflows the byte count"#)
    }

    func testByteCountOverflow() {
        // 2⁶² elements fit in Int, 2⁶² × 8 bytes do not.
        assertRejected(
            file("{" + entry("w", "F64", "[4611686018427387904]", "[0,0]") + "}"), "overflows the byte count")
    }

    func testDimensionTooLargeForInt() {
        assertRejected(
            file("{" + entry("w", "U8", "[99999999999999999999]", "[0,0]") + "}"),
            #"tensor "w": shape value 99999999999999999999 is too large"#)
    }

    func testDataOffsetsOfWrongLength() {
        assertRejected(
            file("{" + entry("w", "F32", "[2]", "[0,8,16]") + "}", dataBytes: 8),
            #"tensor "w": data_offsets must be [begin, end]"#)
    }

    func testDataOffsetsNegative() {
        assertRejected(
            file("{" + entry("w", "F32", "[0]", "[-1,-1]") + "}"),
            #"tensor "w": data_offsets value -1 is not a non-negative integer"#)
    }

    func testDataOffsetsBeginAfterEnd() {
        assertRejected(
            file("{" + entry("w", "F32", "[2]", "[8,0]") + "}", dataBytes: 8),
            #"tensor "w": data_offsets [8, 0]: begin is after end"#)
    }

    func testByteCountNotElementsTimesItemSize() {
        let target = folder.appendingPathComponent("bad.safetensors").path
        let bytes = file("{" + entry("x.A", "F32", "[2,2]", "[0,12]") + "}", dataBytes: 12)
        XCTAssertTrue(FileManager.default.createFile(atPath: target, contents: Data(bytes)))
        let message = assertRejected(path: target, [])
        XCTAssertEqual(
            message, #"\#(target): tensor "x.A": data_offsets [0, 12] hold 12 bytes, but F32 [2, 2] needs 16"#)
    }

    // MARK: Duplicates and metadata

    func testDuplicateTensorKeys() {
        let header = "{" + entry("w", "F32", "[2]", "[0,8]") + "," + entry("w", "F32", "[2]", "[0,8]") + "}"
        assertRejected(file(header, dataBytes: 8), #"tensor "w": appears more than once in the header (duplicate key)"#)
    }

    func testDuplicateKeyInsideAnEntry() {
        let header = #"{"w":{"dtype":"F32","dtype":"F16","shape":[2],"data_offsets":[0,8]}}"#
        assertRejected(file(header, dataBytes: 8), #"tensor "w": key "dtype" appears twice (duplicate key)"#)
    }

    func testDuplicateMetadata() {
        assertRejected(file(#"{"__metadata__":{},"__metadata__":{}}"#), #""__metadata__" more than once"#)
    }

    func testDuplicateKeyInsideMetadata() {
        assertRejected(
            file(#"{"__metadata__":{"format":"pt","format":"np"}}"#),
            #""__metadata__" has key "format" more than once"#)
    }

    func testMetadataWithNonStringValue() {
        assertRejected(
            file(#"{"__metadata__":{"format":"pt","step":1}}"#),
            #""__metadata__" key "step" must map to a string, not 1"#)
    }

    func testMetadataNotAnObject() {
        assertRejected(file(#"{"__metadata__":"pt"}"#), #""__metadata__" must be an object of strings"#)
    }

    // MARK: Layout

    func testOverlappingOffsets() {
        let header = "{" + entry("a", "F32", "[2]", "[0,8]") + "," + entry("b", "F32", "[2]", "[4,12]") + "}"
        assertRejected(file(header, dataBytes: 12), #"tensor "b": data_offsets [4, 12] overlap tensor "a" at [0, 8]"#)
    }

    func testGapBetweenTensors() {
        let header = "{" + entry("a", "F32", "[2]", "[0,8]") + "," + entry("b", "F32", "[2]", "[12,20]") + "}"
        assertRejected(
            file(header, dataBytes: 20), #"tensor "b": gap before data_offsets [12, 20]: tensor "a" ends at 8"#)
    }

    func testFirstTensorNotAtZero() {
        assertRejected(
            file("{" + entry("a", "F32", "[2]", "[4,12]") + "}", dataBytes: 12),
            #"tensor "a": gap before data_offsets [4, 12]: the data section starts at 0"#)
    }

    func testTruncatedData() {
        let header = "{" + entry("a", "F32", "[2]", "[0,8]") + "," + entry("b", "F32", "[2,2]", "[8,24]") + "}"
        assertRejected(
            file(header, dataBytes: 20),
            #"tensor "b": data_offsets [8, 24] run past the end of the data section (20 bytes): the file is truncated"#)
    }

    func testOffsetsFarPastTheEnd() {
        let header = "{" + entry("a", "U8", "[9223372036854775807]", "[0,9223372036854775807]") + "}"
        assertRejected(file(header, dataBytes: 8), #"tensor "a""#, "the file is truncated")
    }

    func testExtraBytesAfterTheLastTensor() {
        assertRejected(
            file("{" + entry("a", "F32", "[2]", "[0,8]") + "}", dataBytes: 12),
            "4 extra bytes after the last tensor's data (tensors end at 8 of a 12-byte data section)")
    }

    func testDataWithoutAnyTensor() {
        assertRejected(file("{}", dataBytes: 3), "3 extra bytes after the last tensor's data")
    }

    func testZeroSizeTensorInsideAnother() {
        let header = "{" + entry("a", "F32", "[2]", "[0,8]") + "," + entry("z", "F32", "[0]", "[4,4]") + "}"
        assertRejected(file(header, dataBytes: 8), #"tensor "z": data_offsets [4, 4] overlap tensor "a""#)
    }

    // MARK: Not files

    func testMissingFile() {
        let target = folder.appendingPathComponent("x.safetensors").path
        assertRejected(path: target, ["cannot open: No such file or directory"])
    }

    func testFolderInsteadOfFile() {
        assertRejected(path: folder.path, ["not a regular file"])
    }
}
