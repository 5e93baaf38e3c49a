import AdaptRuntime
import AdaptTestSupport
import Foundation
import XCTest

/// `Quantiser` against float64 loops over its definition (blockwise absmax
/// along `in`; symmetric round-half-even; NF4 nearest level, ties to the lower
/// one), QLoRA's NormalFloat table rebuilt from its formula, ties, zero groups
/// and non-finite input.
final class QuantiserTests: XCTestCase {
    /// Per row, per group of `group` columns: absmax in float64.
    func absmax(_ w: [Float], columns: Int, group: Int, row: Int, g: Int) -> Double {
        (0..<group).map { abs(Double(w[row * columns + g * group + $0])) }.max()!
    }

    func testSymmetricMatchesFloat64Reference() throws {
        var random = TestRandom(seed: 3)
        let rows = 37, columns = 96
        var w = random.floats(rows * columns, bound: 0.2)
        for i in stride(from: 0, to: w.count, by: 97) { w[i] *= 9 }   // outliers set some groups' scale
        for bits in [4, 8] {
            for group in [32, 96] {
                let quantiser = Quantiser(bits: bits, group: group, kind: .symmetric)
                let quantised = try w.withUnsafeBufferPointer { try quantiser.quantise($0, rows: rows, columns: columns, threads: 2) }
                let dequantised = quantiser.dequantise(quantised)
                let q = Double((1 << (bits - 1)) - 1)
                for row in 0..<rows {
                    for g in 0..<(columns / group) {
                        let m = absmax(w, columns: columns, group: group, row: row, g: g)
                        let scale = Float(m / q)
                        XCTAssertEqual(quantised.scales[row * (columns / group) + g], scale, "bits \(bits) group \(group)")
                        for k in 0..<group {
                            let i = row * columns + g * group + k
                            let code = (Double(w[i]) / m * q).rounded(.toNearestOrEven)
                            XCTAssertEqual(Double(quantised.codes[i]), code, "bits \(bits) group \(group) element \(i)")
                            XCTAssertEqual(dequantised[i], Float(code * Double(scale)), "element \(i)")
                        }
                    }
                }
            }
        }
    }

    /// float64 NF4: the nearest of the 16 levels to x / absmax, the lower one on a tie.
    func nearestLevel(_ n: Double) -> Int {
        var best = 0
        for (i, level) in Quantiser.nf4Levels.enumerated() where abs(n - Double(level)) < abs(n - Double(Quantiser.nf4Levels[best])) {
            best = i
        }
        return best
    }

    func testNF4MatchesFloat64NearestLevel() throws {
        var random = TestRandom(seed: 4)
        let rows = 64, columns = 128, group = 64
        let w = random.floats(rows * columns, bound: 0.05)
        let quantiser = Quantiser(bits: 4, group: group, kind: .nf4)
        let quantised = try w.withUnsafeBufferPointer { try quantiser.quantise($0, rows: rows, columns: columns) }
        let dequantised = quantiser.dequantise(quantised)
        var nearThreshold = 0
        for row in 0..<rows {
            for g in 0..<(columns / group) {
                let m = absmax(w, columns: columns, group: group, row: row, g: g)
                XCTAssertEqual(Double(quantised.scales[row * 2 + g]), m)
                for k in 0..<group {
                    let i = row * columns + g * group + k
                    let n = Double(w[i]) / m, code = Int(quantised.codes[i])
                    // bitsandbytes normalises in float32 (x·(1/absmax)) against float32
                    // midpoints: within a few float32 ulps of a midpoint it may pick the
                    // other neighbour. Anywhere else it is the float64 nearest level.
                    let midpointDistance = zip(Quantiser.nf4Levels, Quantiser.nf4Levels.dropFirst())
                        .map { abs(n - (Double($0) + Double($1)) / 2) }.min()!
                    if midpointDistance < 1e-6 {
                        nearThreshold += 1
                        XCTAssertLessThanOrEqual(abs(code - nearestLevel(n)), 1)
                    } else {
                        XCTAssertEqual(code, nearestLevel(n), "element \(i): \(n)")
                    }
                    XCTAssertEqual(dequantised[i], Float(Double(Quantiser.nf4Levels[code]) * m), "element \(i)")
                }
            }
        }
        XCTAssertLessThan(nearThreshold, 20)
    }

    /// The table is QLoRA's `create_normal_map(offset=0.9677083, use_extra_value=True)`
    /// rebuilt in float64 (scipy's `norm.ppf` by Newton on `erfc`), and the
    /// thresholds are bitsandbytes' `dQuantizeNF4` literals rounded as a C
    /// compiler rounds them (glibc `strtof`), each within one ulp of the float32
    /// midpoint of its levels and off it in exactly 4 places (see `nf4Thresholds`).
    func testNF4LevelsAreTheNormalMap() {
        func ppf(_ p: Double) -> Double {
            var x = 0.0
            for _ in 0..<60 {
                let cdf = 0.5 * erfc(-x / 2.0.squareRoot())
                x -= (cdf - p) / (exp(-x * x / 2) / (2 * Double.pi).squareRoot())
            }
            return x
        }
        func linspace(_ a: Double, _ b: Double, _ n: Int) -> [Double] { (0..<n).map { a + (b - a) * Double($0) / Double(n - 1) } }
        let offset = 0.9677083
        let v1 = linspace(offset, 0.5, 9).dropLast().map(ppf)
        let v3 = linspace(offset, 0.5, 8).dropLast().map { -ppf($0) }
        var values = (v1 + [0] + v3).sorted()
        let top = values.max()!
        values = values.map { $0 / top }
        XCTAssertEqual(Quantiser.nf4Levels.count, 16)
        for (level, exact) in zip(Quantiser.nf4Levels, values) {
            XCTAssertEqual(Double(level), exact, accuracy: 1e-6)
        }
        XCTAssertEqual(Quantiser.nf4Levels[7], 0)
        XCTAssertEqual(Quantiser.nf4Levels.first, -1)
        XCTAssertEqual(Quantiser.nf4Levels.last, 1)
        for i in 0..<15 {
            let midpoint = Float((Double(Quantiser.nf4Levels[i]) + Double(Quantiser.nf4Levels[i + 1])) / 2)
            XCTAssertEqual(Quantiser.nf4Thresholds[i], midpoint, accuracy: midpoint.ulp, "threshold \(i)")
        }
        XCTAssertEqual((0..<15).filter { Quantiser.nf4Thresholds[$0] != (Quantiser.nf4Levels[$0] + Quantiser.nf4Levels[$0 + 1]) / 2 },
                       [0, 8, 12, 14])
        let cuda = ["-0.8480964004993439", "-0.6106329262256622", "-0.4599952697753906", "-0.33967943489551544",
                    "-0.23460740596055984", "-0.13791173323988914", "-0.045525018125772476", "0.03979014977812767",
                    "0.1202552504837513", "0.2035212516784668", "0.2920137718319893", "0.3893125355243683",
                    "0.5016634166240692", "0.6427869200706482", "0.8614784181118011"]
        XCTAssertEqual(Quantiser.nf4Thresholds, cuda.map { strtof($0, nil) })
    }

    func testTiesRoundHalfToEvenAndNF4ThresholdsGoLow() throws {
        // absmax 7 with 4 bits: scale 1, so x / scale is x itself.
        let symmetric: [Float] = [7, 0.5, 1.5, 2.5, -0.5, -2.5, -3.5, 6.5]
        let int4 = Quantiser(bits: 4, group: 8, kind: .symmetric)
        let codes4 = try symmetric.withUnsafeBufferPointer { try int4.quantise($0, rows: 1, columns: 8) }.codes
        XCTAssertEqual(codes4, [7, 0, 2, 2, 0, -2, -4, 6])
        let int8 = Quantiser(bits: 8, group: 8, kind: .symmetric)
        let scaled: [Float] = [127, 0.5, 1.5, 2.5, -0.5, -2.5, -3.5, 126.5]   // absmax 127: scale 1
        let codes8 = try scaled.withUnsafeBufferPointer { try int8.quantise($0, rows: 1, columns: 8) }.codes
        XCTAssertEqual(codes8, [127, 0, 2, 2, 0, -2, -4, 126])
        // absmax 1: each value on a threshold takes the lower level, the next float above it the upper.
        let nf4 = Quantiser(bits: 4, group: 31, kind: .nf4)
        let onThresholds = [1] + Quantiser.nf4Thresholds + Quantiser.nf4Thresholds.map { $0.nextUp }
        let codes = try onThresholds.withUnsafeBufferPointer { try nf4.quantise($0, rows: 1, columns: 31) }.codes
        XCTAssertEqual(codes, [15] + (0..<15).map(Int8.init) + (1...15).map(Int8.init))
    }

    func testZeroGroupsDequantiseToZero() throws {
        var w = [Float](repeating: 0, count: 2 * 16)
        w[16] = -0.25
        for (quantiser, zeroCode) in [(Quantiser(bits: 4, group: 8, kind: .nf4), Int8(7)),
                                      (Quantiser(bits: 8, group: 8, kind: .symmetric), Int8(0))] {
            let quantised = try w.withUnsafeBufferPointer { try quantiser.quantise($0, rows: 2, columns: 16) }
            XCTAssertEqual(quantised.scales.count, 4)
            XCTAssertEqual(quantised.scales[0], 0)
            XCTAssertEqual(quantised.scales[1], 0)
            XCTAssertEqual(Array(quantised.codes[0..<16]), [Int8](repeating: zeroCode, count: 16))
            let dequantised = quantiser.dequantise(quantised)
            XCTAssertEqual(Array(dequantised[0..<16]), [Float](repeating: 0, count: 16))
            XCTAssertEqual(dequantised[16], -0.25, accuracy: 1e-7)
            XCTAssertTrue(dequantised[16..<32].dropFirst().allSatisfy { $0 == 0 })
        }
    }

    func testNonFiniteIsRefusedWithItsIndex() {
        for bad in [Float.nan, .infinity, -.infinity] {
            var w = [Float](repeating: 0.1, count: 4 * 8)
            w[19] = bad
            for kind in Quantiser.Kind.allCases {
                let quantiser = Quantiser(bits: 4, group: 4, kind: kind)
                XCTAssertThrowsError(try w.withUnsafeBufferPointer { try quantiser.quantise($0, rows: 4, columns: 8, threads: 2) }) { error in
                    XCTAssertEqual((error as? Quantiser.NonFiniteValue)?.index, 19)
                    XCTAssertTrue("\(error)".contains(bad.isNaN ? "NaN" : "Inf"), "\(error)")
                }
            }
        }
    }

    func testThreadsGiveTheSameCodes() throws {
        var random = TestRandom(seed: 5)
        let w = random.floats(300 * 256)
        for kind in Quantiser.Kind.allCases {
            let quantiser = Quantiser(bits: 4, group: 64, kind: kind)
            let one = try w.withUnsafeBufferPointer { try quantiser.quantise($0, rows: 300, columns: 256, threads: 1) }
            let four = try w.withUnsafeBufferPointer { try quantiser.quantise($0, rows: 300, columns: 256, threads: 4) }
            XCTAssertEqual(one, four)
            XCTAssertEqual(quantiser.dequantise(one, threads: 1), quantiser.dequantise(four, threads: 4))
        }
    }
}
