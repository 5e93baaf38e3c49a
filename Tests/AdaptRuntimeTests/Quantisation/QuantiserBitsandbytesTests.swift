import AdaptRuntime
import Foundation
import XCTest

/// `Quantiser` against what bitsandbytes itself computed
/// (Tests/Fixtures/bitsandbytes, see its README): NF4 with blocks of 64 bit
/// for bit, values on the decision thresholds and a zero block included, and
/// LLM.int8's row-wise absmax codes (symmetric, 8 bits, one group a row).
///
/// The fixture comes from bitsandbytes' CPU backend, whose NF4 bounds are the
/// float32 midpoints of the levels; `Quantiser` follows its CUDA kernel
/// (`dQuantizeNF4`), whose literals are one ulp away for 4 of the 15. Only a
/// normalised value between the two (inclusive) may differ: row 0 holds such
/// values on purpose, and everything else must be equal bit for bit.
final class QuantiserBitsandbytesTests: XCTestCase {
    static let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fixtures/bitsandbytes/quantised.safetensors").path
    let rows = 16, columns = 128

    func testNF4IsBitsandbytesBitForBit() throws {
        let file = try SafetensorsFile.read(path: Self.fixture)
        let w = try file.floats("w")
        let quantiser = Quantiser(bits: 4, group: 64, kind: .nf4)
        let quantised = try w.withUnsafeBufferPointer { try quantiser.quantise($0, rows: rows, columns: columns) }
        XCTAssertEqual(quantised.scales, try file.floats("nf4_absmax"))
        let dequantised = quantiser.dequantise(quantised), expected = try file.floats("nf4")
        let levels = Quantiser.nf4Levels
        let cpuBounds = (0..<15).map { (levels[$0] + levels[$0 + 1]) / 2 }
        let disputed = zip(Quantiser.nf4Thresholds, cpuBounds).filter { $0 != $1 }.map { (min($0, $1), max($0, $1)) }
        var differing = 0
        for i in 0..<w.count where dequantised[i].bitPattern != expected[i].bitPattern {
            let n = w[i] * (1 / quantised.scales[i / 64])
            XCTAssertTrue(disputed.contains { $0.0 <= n && n <= $0.1 }, "element \(i): \(dequantised[i]) ≠ \(expected[i])")
            differing += 1
        }
        // Each disputed bound: its CUDA and CPU floats (row 0, 1…15 and 31…45) and the float above the CUDA one.
        XCTAssertEqual(differing, 7)
        // Row 0 holds the thresholds (levels 0…14: ties go low) and the floats just above them.
        XCTAssertEqual(Array(quantised.codes[1..<31]), (0..<15).map(Int8.init) + (1...15).map(Int8.init))
        XCTAssertTrue(dequantised[(columns + 64)..<(2 * columns)].allSatisfy { $0 == 0 })
    }

    func testInt8RowwiseIsLLMInt8() throws {
        let file = try SafetensorsFile.read(path: Self.fixture)
        let w = try file.floats("w")
        let quantiser = Quantiser(bits: 8, group: columns, kind: .symmetric)
        let quantised = try w.withUnsafeBufferPointer { try quantiser.quantise($0, rows: rows, columns: columns) }
        XCTAssertEqual(quantised.codes.map(Float.init), try file.floats("int8_codes"))
        let absmax = try file.floats("int8_row_absmax")
        for row in 0..<rows { XCTAssertEqual(quantised.scales[row], absmax[row] / 127, accuracy: absmax[row] / 127 * 2e-7) }
        // bitsandbytes scales by absmax·(1/127) in its own order of rounding: one float32 rounding apart.
        for (got, want) in zip(quantiser.dequantise(quantised), try file.floats("int8")) {
            XCTAssertEqual(got, want, accuracy: max(abs(want), 1e-30) * 3e-7)
        }
    }
}
