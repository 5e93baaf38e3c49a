import XCTest
import Foundation
@testable import AdaptRuntime

/// The streaming writer writes the very bytes SafetensorsWriter writes, refuses
/// out-of-order or mis-sized tensors, and leaves nothing behind unless committed.
final class SafetensorsStreamWriterTests: XCTestCase {
    var folder: URL!

    override func setUpWithError() throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("stream-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: folder) }

    let tensors: [(String, DType, [Int], [UInt8])] = [
        ("z.weight", .bf16, [2, 3], Array(0..<12)),
        ("a.bias", .f32, [3], Array(100..<112)),
        ("é.ids", .i64, [1], Array(repeating: 7, count: 8)),
        ("empty", .f16, [0, 4], []),
    ]

    func testSameBytesAsTheInMemoryWriter() throws {
        var memory = SafetensorsWriter(metadata: ["format": "pt", "b": "x"])
        for (name, dtype, shape, bytes) in tensors { memory.add(name, dtype: dtype, shape: shape, bytes: bytes) }
        let path = folder.appendingPathComponent("s.safetensors").path
        let stream = try SafetensorsStreamWriter(path: path, metadata: ["format": "pt", "b": "x"],
                                                 tensors: tensors.map { ($0.0, $0.1, $0.2) })
        while let name = stream.nextName {
            let bytes = tensors.first { $0.0 == name }!.3
            if name == "z.weight" {
                // In pieces of 5 bytes, as a bounded copy buffer hands them over.
                try stream.appendInPieces(name) { write in
                    for start in stride(from: 0, to: bytes.count, by: 5) {
                        try Array(bytes[start..<min(start + 5, bytes.count)]).withUnsafeBytes { try write($0) }
                    }
                }
            } else {
                try stream.append(name, bytes: bytes)
            }
        }
        try stream.commit()
        XCTAssertEqual(Array(try Data(contentsOf: URL(fileURLWithPath: path))), try memory.encoded())
        let file = try SafetensorsFile.read(path: path)
        for entry in file.tensors {
            try file.withRawBytes(entry) { XCTAssertEqual(Array($0), tensors.first { $0.0 == entry.name }!.3) }
            file.releasePages(entry)
            XCTAssertEqual(try file.rawBytes(entry.name), tensors.first { $0.0 == entry.name }!.3, "readable after release")
        }
    }

    func testMisuseIsAnErrorAndNothingIsLeft() throws {
        let path = folder.appendingPathComponent("s.safetensors").path
        do {
            let stream = try SafetensorsStreamWriter(path: path, metadata: [:], tensors: tensors.map { ($0.0, $0.1, $0.2) })
            XCTAssertThrowsError(try stream.append("z.weight", bytes: Array(0..<12)))  // "a.bias" comes first
            XCTAssertThrowsError(try stream.append("a.bias", bytes: [1, 2]))           // wrong size
            try stream.append("a.bias", bytes: Array(100..<112))
            XCTAssertThrowsError(try stream.appendInPieces("empty") { write in           // next in order, 0 bytes
                try [UInt8](repeating: 0, count: 3).withUnsafeBytes { try write($0) }    // 3 bytes: too many
            })
            XCTAssertThrowsError(try stream.commit())                                  // never all appended
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder.path), [])
    }
}
