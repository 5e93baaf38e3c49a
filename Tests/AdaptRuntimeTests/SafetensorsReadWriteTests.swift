import AdaptRuntime
import Foundation
import XCTest

final class SafetensorsReadWriteTests: XCTestCase {
    private var folder: URL!

    override func setUpWithError() throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("safetensors-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try FileManager.default.removeItem(at: folder)
    }

    private func path(_ name: String) -> String {
        folder.appendingPathComponent(name).path
    }

    /// Writes `writer` to a fresh file and reads it back.
    private func roundTrip(_ writer: SafetensorsWriter, name: String = "t.safetensors") throws -> SafetensorsFile {
        let target = path(name)
        try writer.write(to: target)
        return try SafetensorsFile.read(path: target)
    }

    /// The header as text and the data section, split as the format defines them.
    private func split(_ bytes: [UInt8]) -> (headerLength: Int, header: String, data: [UInt8]) {
        let length = bytes[0..<8].reversed().reduce(0) { $0 << 8 | Int($1) }
        return (length, String(decoding: bytes[8..<(8 + length)], as: UTF8.self), Array(bytes[(8 + length)...]))
    }

    private func littleEndian(_ values: [UInt16]) -> [UInt8] {
        values.flatMap { [UInt8($0 & 0xFF), UInt8($0 >> 8)] }
    }

    private func assertThrows<T>(
        _ expression: () throws -> T, _ expected: String, file: StaticString = #filePath, line: UInt = #line
    ) {
        XCTAssertThrowsError(try expression(), file: file, line: line) { error in
            XCTAssertEqual("\(error)", expected, file: file, line: line)
        }
    }

    // MARK: Round trip and layout

    func testRoundTripKeepsShapesValuesDtypesAndMetadata() throws {
        var writer = SafetensorsWriter(metadata: ["format": "pt", "adaptc.spec": "Bert"])
        writer.add("layer.B", floats: [1, -2.5, 3e-8, .greatestFiniteMagnitude, -0.0, 7], shape: [3, 2])
        writer.add("layer.A", floats: [0.5], shape: [])
        writer.add(
            "ids", dtype: .i64, shape: [2],
            bytes: [1, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF])
        writer.add("empty", floats: [], shape: [4, 0, 3])
        writer.add("mask", dtype: .bool, shape: [3], bytes: [1, 0, 1])

        let file = try roundTrip(writer)
        XCTAssertEqual(file.metadata, ["format": "pt", "adaptc.spec": "Bert"])
        XCTAssertEqual(file.tensors.map(\.name), ["empty", "ids", "layer.A", "layer.B", "mask"])
        XCTAssertEqual(file.entry("layer.B")?.shape, [3, 2])
        XCTAssertEqual(file.entry("layer.B")?.dtype, .f32)
        XCTAssertEqual(file.entry("layer.B")?.elementCount, 6)
        XCTAssertEqual(file.entry("layer.A")?.shape, [])
        XCTAssertEqual(file.entry("layer.A")?.elementCount, 1)
        XCTAssertEqual(file.entry("empty")?.elementCount, 0)
        XCTAssertEqual(file.entry("empty")?.dataOffsets.count, 0)
        XCTAssertNil(file.entry("missing"))

        let values = try file.floats("layer.B")
        XCTAssertEqual(values, [1, -2.5, 3e-8, .greatestFiniteMagnitude, -0.0, 7])
        XCTAssertEqual(values[4].sign, .minus)
        XCTAssertEqual(try file.floats("layer.A"), [0.5])
        XCTAssertEqual(try file.floats("empty"), [])
        XCTAssertEqual(file.entry("ids")?.dtype, .i64)
        XCTAssertEqual(try file.rawBytes("ids"), [1, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF])
        XCTAssertEqual(try file.rawBytes("mask"), [1, 0, 1])
        XCTAssertEqual(try file.rawBytes("layer.A"), [0x00, 0x00, 0x00, 0x3F])
        XCTAssertEqual(try file.rawBytes("missing"), [])
    }

    func testCarriedThroughTensorsAreRewrittenByteForByte() throws {
        var writer = SafetensorsWriter()
        writer.add("f64", dtype: .f64, shape: [1], bytes: [0, 0, 0, 0, 0, 0, 0xF0, 0x3F])
        writer.add("f8", dtype: .f8e4m3, shape: [2, 2], bytes: [1, 2, 3, 4])
        writer.add("bf", dtype: .bf16, shape: [2], bytes: [0x80, 0x3F, 0x40, 0xC0])
        let first = try roundTrip(writer, name: "first.safetensors")

        var copy = SafetensorsWriter(metadata: first.metadata)
        for entry in first.tensors.reversed() {
            copy.add(entry.name, dtype: entry.dtype, shape: entry.shape, bytes: try first.rawBytes(entry.name))
        }
        XCTAssertEqual(try copy.encoded(), try writer.encoded())
    }

    func testOutputIsExactAndSortedWithDataInNameOrder() throws {
        var writer = SafetensorsWriter(metadata: ["z": "last", "a": "first"])
        writer.add("b", floats: [2], shape: [1])
        writer.add("a", floats: [1, 1], shape: [2])
        let bytes = try writer.encoded()
        let (length, header, data) = split(bytes)

        let json =
            #"{"__metadata__":{"a":"first","z":"last"},"#
            + #""a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"#
            + #""b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}"#
        XCTAssertEqual(json.utf8.count, 148)
        XCTAssertEqual(length, 152)
        XCTAssertEqual(header, json + "    ")
        XCTAssertEqual(Array(bytes[0..<8]), [152, 0, 0, 0, 0, 0, 0, 0])
        XCTAssertEqual(data, [0, 0, 0x80, 0x3F, 0, 0, 0x80, 0x3F, 0, 0, 0, 0x40])

        var reordered = SafetensorsWriter()
        reordered.add("a", floats: [1, 1], shape: [2])
        reordered.add("b", floats: [2], shape: [1])
        reordered.metadata["a"] = "first"
        reordered.metadata["z"] = "last"
        XCTAssertEqual(try reordered.encoded(), bytes, "bytes must not depend on insertion order")
    }

    func testHeaderIsPaddedWithSpacesToAMultipleOf8() throws {
        for nameLength in 1...16 {
            var writer = SafetensorsWriter()
            writer.add(String(repeating: "n", count: nameLength), floats: [1, 2, 3], shape: [3])
            let bytes = try writer.encoded()
            let (length, header, data) = split(bytes)
            XCTAssertEqual(length % 8, 0, "name length \(nameLength)")
            XCTAssertEqual(bytes.count, 8 + length + 12)
            XCTAssertEqual(data.count, 12)
            let padding = header.reversed().prefix { $0 == " " }.count
            XCTAssertLessThan(padding, 8)
            XCTAssertEqual(header.dropLast(padding).last, "}", "padding must be spaces only")
            // An independent parser accepts the padded header.
            XCTAssertNotNil(try JSONSerialization.jsonObject(with: Data(header.utf8)) as? [String: Any])
        }
    }

    func testEmptyTensorListsRoundTrip() throws {
        let bare = try SafetensorsWriter().encoded()
        XCTAssertEqual(bare, [8, 0, 0, 0, 0, 0, 0, 0] + Array("{}      ".utf8))
        let file = try roundTrip(SafetensorsWriter(), name: "bare.safetensors")
        XCTAssertTrue(file.tensors.isEmpty)
        XCTAssertEqual(file.metadata, [:])

        let onlyMetadata = try roundTrip(SafetensorsWriter(metadata: ["k": "v"]), name: "meta.safetensors")
        XCTAssertTrue(onlyMetadata.tensors.isEmpty)
        XCTAssertEqual(onlyMetadata.metadata, ["k": "v"])
    }

    func testMetadataAndNamesWithSpecialCharactersRoundTrip() throws {
        let metadata = [
            "adaptc.hash": "9f86d081884c7d65",
            "quote\"and\\backslash": "line\nbreak\ttab\u{1}control",
            "unicode": "héllo – 世界 😀",
            "": "empty key",
        ]
        var writer = SafetensorsWriter(metadata: metadata)
        writer.add("naïve \"tensor\" 😀", floats: [1], shape: [1])
        let file = try roundTrip(writer)
        XCTAssertEqual(file.metadata, metadata)
        XCTAssertEqual(try file.floats("naïve \"tensor\" 😀"), [1])
    }

    // MARK: Reading what other writers produce

    func testReaderAcceptsWhitespaceEscapesAndAnyKeyOrder() throws {
        // Data laid out in reverse name order, keys in an unusual order, escapes
        // including a surrogate pair, and JSON whitespace everywhere it may go.
        let header =
            "\r\n{ \"z\" : { \"data_offsets\" : [ 0 , 4 ] , \"shape\" : [ 1 ] , \"dtype\" : \"F32\" } ,\n"
            + "\t\"\\ud83d\\ude00\\u00e9\\/\\n\": {\"shape\": [0, 5], \"dtype\": \"I8\", \"data_offsets\": [4, 4]},"
            + " \"a\": {\"dtype\": \"F16\", \"shape\": [2], \"data_offsets\": [4, 8]},"
            + " \"__metadata__\": {\"format\": \"pt\"} }  "
        var bytes = withUnsafeBytes(of: UInt64(header.utf8.count).littleEndian) { Array($0) }
        bytes += Array(header.utf8) + [0, 0, 0x40, 0x40] + [0x00, 0x3C, 0x00, 0xC0]
        let target = path("foreign.safetensors")
        XCTAssertTrue(FileManager.default.createFile(atPath: target, contents: Data(bytes)))

        let file = try SafetensorsFile.read(path: target)
        XCTAssertEqual(file.tensors.map(\.name), ["a", "z", "😀é/\n"])
        XCTAssertEqual(file.metadata, ["format": "pt"])
        XCTAssertEqual(try file.floats("z"), [3])
        XCTAssertEqual(try file.floats("a"), [1, -2])
        XCTAssertEqual(file.entry("😀é/\n")?.shape, [0, 5])
        XCTAssertEqual(file.entry("😀é/\n")?.dataOffsets, 4..<4)
        XCTAssertEqual(file.entry("a")?.dataOffsets, 4..<8)
    }

    func testPEFTFixture() throws {
        // Tests/Fixtures/peft is part of the repository (written by PEFT 0.21).
        let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/peft/lora_qv/adapter_model.safetensors").path
        let file = try SafetensorsFile.read(path: fixture)
        XCTAssertEqual(file.metadata, ["format": "pt"])
        XCTAssertEqual(file.tensors.count, 16)
        for entry in file.tensors {
            XCTAssertTrue(entry.name.hasPrefix("base_model.model.encoder.layer."), entry.name)
            XCTAssertEqual(entry.dtype, .f32)
            XCTAssertEqual(entry.shape, entry.name.hasSuffix("lora_A.weight") ? [8, 64] : [64, 8], entry.name)
            XCTAssertEqual(try file.floats(entry.name).count, 512)
        }
        // Values as Python's struct module reads them from the same file.
        let values = try file.floats("base_model.model.encoder.layer.1.attention.self.value.lora_B.weight")
        XCTAssertEqual(Array(values.prefix(3)), [-0.020008491352200508, -0.0024599279277026653, 0.003253419417887926])
        XCTAssertEqual(values.last, -0.01901186630129814)
        XCTAssertEqual(values.reduce(0.0) { $0 + Double($1) }, -0.6027099470375106, accuracy: 1e-12)
    }

    // MARK: Widening

    private func halfFile(_ dtype: DType, _ bits: [UInt16]) throws -> SafetensorsFile {
        var writer = SafetensorsWriter()
        writer.add("h", dtype: dtype, shape: [bits.count], bytes: littleEndian(bits))
        return try roundTrip(writer, name: "\(dtype.rawValue)-\(UUID().uuidString).safetensors")
    }

    func testF16WideningMatchesHandComputedValues() throws {
        let cases: [(bits: UInt16, value: Float)] = [
            (0x0000, 0),
            (0x3C00, 1),
            (0xC000, -2),
            (0x3555, 0x1.554p-2),  // 0.333251953125, the F16 nearest 1/3
            (0x7BFF, 65504),  // largest finite
            (0x0400, 0x1p-14),  // smallest normal
            (0x0001, 0x1p-24),  // smallest subnormal
            (0x03FF, 0x1.ff8p-15),  // largest subnormal: 1023 · 2⁻²⁴
            (0x0200, 0x1p-15),  // subnormal with one bit set
            (0x8001, -0x1p-24),  // negative subnormal
            (0xFBFF, -65504),
        ]
        let values = try halfFile(.f16, cases.map(\.bits)).floats("h")
        for (index, (bits, value)) in cases.enumerated() {
            XCTAssertEqual(values[index], value, "F16 0x\(String(bits, radix: 16))")
        }
        let negativeZero = try halfFile(.f16, [0x8000]).floats("h")
        XCTAssertEqual(negativeZero[0].bitPattern, (-0.0 as Float).bitPattern)
    }

    #if !(os(macOS) && arch(x86_64))
    /// Every finite binary16 against the platform's own conversion: an
    /// independent implementation, exhaustively.
    func testF16WideningMatchesFloat16ForEveryFiniteValue() throws {
        let finite = (UInt16.min...UInt16.max).filter { $0 & 0x7C00 != 0x7C00 }
        let values = try halfFile(.f16, finite).floats("h")
        XCTAssertEqual(values.count, 63488)
        for (bits, value) in zip(finite, values) where Float(Float16(bitPattern: bits)).bitPattern != value.bitPattern {
            XCTFail(
                "F16 0x\(String(bits, radix: 16)) widened to \(value), expected \(Float(Float16(bitPattern: bits)))")
        }
    }
    #endif

    func testBF16WideningMatchesHandComputedValues() throws {
        let cases: [(bits: UInt16, value: Float)] = [
            (0x3F80, 1),
            (0xC040, -3),
            (0x3EAB, 0x1.56p-2),  // 0.333984375
            (0x7F7F, 0x1.fep127),  // largest finite
            (0x0080, 0x1p-126),  // smallest normal
            (0x0001, 0x1p-133),  // smallest subnormal
            (0x8001, -0x1p-133),
            (0x0000, 0),
        ]
        let values = try halfFile(.bf16, cases.map(\.bits)).floats("h")
        for (index, (bits, value)) in cases.enumerated() {
            XCTAssertEqual(values[index], value, "BF16 0x\(String(bits, radix: 16))")
        }
    }

    func testNonFiniteValuesAreErrorsNamingTheTensor() throws {
        let halfCases: [(DType, UInt16, String)] = [
            (.f16, 0x7C00, "Inf"), (.f16, 0xFC00, "Inf"), (.f16, 0x7E00, "NaN"), (.f16, 0x7C01, "NaN"),
            (.bf16, 0x7F80, "Inf"), (.bf16, 0xFF80, "Inf"), (.bf16, 0x7FC0, "NaN"),
        ]
        for (dtype, bits, kind) in halfCases {
            let file = try halfFile(dtype, [0x0000, bits])
            XCTAssertThrowsError(try file.floats("h")) { error in
                XCTAssertTrue(error is SafetensorsError)
                XCTAssertEqual("\(error)", "\(file.path): tensor \"h\" contains \(kind) (element 1)")
            }
        }
        for (value, kind) in [(Float.infinity, "Inf"), (-.infinity, "Inf"), (.nan, "NaN"), (.signalingNaN, "NaN")] {
            var writer = SafetensorsWriter()
            writer.add("x.A", floats: [1, 2, value], shape: [3])
            let file = try roundTrip(writer, name: "\(kind)-\(UUID().uuidString).safetensors")
            assertThrows({ try file.floats("x.A") }, "\(file.path): tensor \"x.A\" contains \(kind) (element 2)")
            XCTAssertEqual(try file.rawBytes("x.A").count, 12, "carrying through does not judge values")
        }
    }

    func testFloatsRefusesOtherDtypesAndUnknownNames() throws {
        var writer = SafetensorsWriter()
        writer.add("ids", dtype: .i64, shape: [1], bytes: [0, 0, 0, 0, 0, 0, 0, 0])
        let file = try roundTrip(writer)
        assertThrows(
            { try file.floats("ids") },
            "\(file.path): tensor \"ids\": dtype I64 cannot be read as floats (only F32, F16 and BF16 can)")
        assertThrows({ try file.floats("nope") }, "\(file.path): tensor \"nope\": not found")
    }

    // MARK: DType

    func testDTypes() {
        XCTAssertEqual(
            DType.allCases.map(\.rawValue),
            ["F64", "F32", "F16", "BF16", "I64", "I32", "I16", "I8", "U8", "BOOL", "F8_E4M3", "F8_E5M2"])
        XCTAssertEqual(DType.allCases.map(\.itemSize), [8, 4, 2, 2, 8, 4, 2, 1, 1, 1, 1, 1])
        XCTAssertEqual(DType.allCases.filter(\.isFloatingComputable), [.f32, .f16, .bf16])
    }

    // MARK: Writer errors

    func testWriterRejectsInconsistentTensors() {
        var duplicate = SafetensorsWriter()
        duplicate.add("w", floats: [1], shape: [1])
        duplicate.add("w", floats: [2], shape: [1])
        assertThrows(
            { try duplicate.encoded() }, "(safetensors in memory): tensor \"w\": added more than once (duplicate name)")

        var mismatch = SafetensorsWriter()
        mismatch.add("x.A", floats: [1, 2, 3], shape: [2, 2])
        assertThrows(
            { try mismatch.encoded() },
            "(safetensors in memory): tensor \"x.A\": 12 bytes given, but F32 [2, 2] needs 16")

        var raw = SafetensorsWriter()
        raw.add("h", dtype: .f16, shape: [3], bytes: [0, 0, 0, 0])
        assertThrows({ try raw.encoded() }, "(safetensors in memory): tensor \"h\": 4 bytes given, but F16 [3] needs 6")

        var negative = SafetensorsWriter()
        negative.add("n", floats: [], shape: [0, -1])
        assertThrows(
            { try negative.encoded() }, "(safetensors in memory): tensor \"n\": shape [0, -1] has negative dimension -1"
        )

        var overflow = SafetensorsWriter()
        overflow.add("o", dtype: .u8, shape: [1 << 32, 1 << 32, 0], bytes: [])
        assertThrows(
            { try overflow.encoded() },
            "(safetensors in memory): tensor \"o\": U8 [4294967296, 4294967296, 0] overflows the byte count")

        var reserved = SafetensorsWriter()
        reserved.add("__metadata__", floats: [1], shape: [1])
        assertThrows(
            { try reserved.encoded() },
            "(safetensors in memory): tensor \"__metadata__\": the name is reserved for metadata")

        let target = path("bad.safetensors")
        assertThrows(
            { try mismatch.write(to: target) }, "\(target): tensor \"x.A\": 12 bytes given, but F32 [2, 2] needs 16")
        XCTAssertFalse(FileManager.default.fileExists(atPath: target))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder.path), [])
    }

    // MARK: I/O

    func testMissingFileAndFolderAreErrorsNamingThePath() throws {
        let missing = path("x.safetensors")
        assertThrows({ try SafetensorsFile.read(path: missing) }, "\(missing): cannot open: No such file or directory")
        assertThrows({ try SafetensorsFile.read(path: folder.path) }, "\(folder.path): not a regular file")
    }

    func testAtomicWriteReplacesTheFileAndLeavesNoTemporaryFiles() throws {
        let target = path("adapter.safetensors")
        var first = SafetensorsWriter(metadata: ["version": "1"])
        first.add("w", floats: [1, 2], shape: [2])
        try first.write(to: target)
        var second = SafetensorsWriter(metadata: ["version": "2"])
        second.add("v", floats: [3], shape: [1])
        try second.write(to: target)

        let file = try SafetensorsFile.read(path: target)
        XCTAssertEqual(file.metadata, ["version": "2"])
        XCTAssertEqual(file.tensors.map(\.name), ["v"])
        XCTAssertEqual(try Array(Data(contentsOf: URL(fileURLWithPath: target))), try second.encoded())
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder.path), ["adapter.safetensors"])

        let text = path("Adapter.swift")
        try AtomicFile.write("// old\n", to: text)
        try AtomicFile.write("// DO NOT EDIT. é\n", to: text)
        XCTAssertEqual(try String(contentsOfFile: text, encoding: .utf8), "// DO NOT EDIT. é\n")
        try AtomicFile.write([UInt8](), to: text)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: text)).count, 0)
        XCTAssertEqual(
            try FileManager.default.contentsOfDirectory(atPath: folder.path).sorted(),
            ["Adapter.swift", "adapter.safetensors"])
    }

    func testAtomicWriteFailureNamesThePathAndLeavesNothingBehind() throws {
        let target = path("no-such-folder/out.safetensors")
        XCTAssertThrowsError(try AtomicFile.write([1, 2, 3], to: target)) { error in
            XCTAssertTrue(error is FileWriteError)
            XCTAssertTrue("\(error)".hasPrefix("\(target): cannot create a temporary file"), "\(error)")
            XCTAssertTrue("\(error)".hasSuffix("No such file or directory"), "\(error)")
        }
        // A folder at the target is refused before anything is written (OutputDestination).
        let occupied = path("occupied")
        try FileManager.default.createDirectory(atPath: occupied + "/child", withIntermediateDirectories: true)
        XCTAssertThrowsError(try AtomicFile.write([1, 2, 3], to: occupied)) { error in
            XCTAssertEqual("\(error)", "\(occupied): is a folder; only a regular file, a FIFO or a character device can be written")
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder.path), ["occupied"])
    }
}
