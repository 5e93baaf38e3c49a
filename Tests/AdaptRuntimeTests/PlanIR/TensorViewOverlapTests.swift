import XCTest
import AdaptRuntime

/// Overlap and leading-dimension checks are decided for every token count
/// n ≥ 1, not for a few samples of n: offsets, extents and strides are linear
/// in n, so each question is a set of linear inequalities over the integers.
final class TensorViewOverlapTests: XCTestCase {
    /// A run of `length` consecutive floats from `start`.
    func span(_ start: Extent, _ length: Extent, _ storage: Storage = .workspace) -> TensorView {
        TensorView("v", in: storage, offset: start, modes: ["k"], extents: [length])
    }

    /// [8n, 16n) and [100, 200) meet for n = 7…24 only: no sample of n in {1, 2, 64, 4096} sees it.
    func testSpansThatMeetForAFewTokenCountsOnly() {
        let grows = span(Extent.tokens * 8, Extent.tokens * 8), fixed = span(.fixed(100), .fixed(100))
        XCTAssertTrue(grows.mayOverlap(fixed))
        XCTAssertTrue(fixed.mayOverlap(grows))
        // [8n, 16n) and [100, 104): n = 7…12.
        XCTAssertTrue(grows.mayOverlap(span(.fixed(100), .fixed(4))))
        // [n + 5000, 2n + 5000) never meets [0, 5000).
        XCTAssertFalse(span(Extent(5000, perToken: 1), .tokens).mayOverlap(span(.fixed(0), .fixed(5000))))
        XCTAssertFalse(grows.mayOverlap(span(.fixed(100), .fixed(100), .parameters)))
    }

    /// Against every token count up to past where the spans' ends cross: for
    /// runs of floats the answer is exact (overlap for some n ≥ 1 or none).
    func testSpansAgreeWithEveryTokenCount() {
        var random = SystemRandomNumberGenerator()
        for _ in 0..<3000 {
            func extent(_ range: ClosedRange<Int>) -> Extent {
                Extent(Int.random(in: range, using: &random), perToken: Int.random(in: -3...3, using: &random))
            }
            // Lengths at least 1 for every n that matters; offsets anywhere.
            let (o1, o2) = (extent(-40...300), extent(-40...300))
            let (l1, l2) = (Extent(Int.random(in: 1...60, using: &random), perToken: Int.random(in: 0...3, using: &random)),
                            Extent(Int.random(in: 1...60, using: &random), perToken: Int.random(in: 0...3, using: &random)))
            let meet = (1...2000).contains { n in
                let (a0, a1) = (o1.value(tokens: n), o1.value(tokens: n) + l1.value(tokens: n))
                let (b0, b1) = (o2.value(tokens: n), o2.value(tokens: n) + l2.value(tokens: n))
                return a0 < b1 && b0 < a1
            }
            XCTAssertEqual(span(o1, l1).mayOverlap(span(o2, l2)), meet, "[\(o1), \(o1)+\(l1)) and [\(o2), \(o2)+\(l2))")
        }
    }

    /// Column blocks of one wider matrix (each module's slice of a stacked z):
    /// disjoint columns never meet, whatever n; overlapping columns meet where the rows do.
    func testColumnBlocksForEveryTokenCount() {
        func block(row: Extent, column: Int, rows: Extent, columns: Int, stride: Extent = .fixed(24)) -> TensorView {
            TensorView("z", in: .workspace, offset: row * 24 + .fixed(column), indices: ("n", "r"),
                       shape: (rows, .fixed(columns)), rowStride: stride)
        }
        let left = block(row: .fixed(0), column: 0, rows: .tokens, columns: 8)
        XCTAssertFalse(left.mayOverlap(block(row: .fixed(0), column: 8, rows: .tokens, columns: 8)))
        XCTAssertTrue(left.mayOverlap(block(row: .fixed(0), column: 4, rows: .tokens, columns: 8)))
        // A block further down that the first reaches for n ≥ 11 only.
        XCTAssertTrue(left.mayOverlap(block(row: .fixed(10), column: 2, rows: .fixed(1), columns: 2)))
        // One that starts n rows down (a region placed after an n-row one) never meets rows 0..<n.
        XCTAssertFalse(left.mayOverlap(block(row: .tokens, column: 0, rows: .tokens, columns: 8)))
        XCTAssertTrue(left.mayOverlap(block(row: Extent(-1, perToken: 1), column: 0, rows: .tokens, columns: 8)))
    }

    /// A leading dimension must cover its row for every n: `5000 − n ≥ 2` fails from n = 4999 on.
    func testLeadingDimensionForEveryTokenCount() {
        let x = MatrixView("x", in: .input, indices: ("n", "i"), shape: (.tokens, .fixed(8)))
        let a = MatrixView("A", in: .parameters, indices: ("r", "i"), shape: (.fixed(2), .fixed(8)))
        let shrinking = MatrixView("z", in: .workspace, indices: ("n", "r"), shape: (.tokens, .fixed(2)), rowStride: Extent(5000, perToken: -1))
        XCTAssertNil(Contraction(shrinking, x, a, accumulate: false).lowered)
        let growing = MatrixView("z", in: .workspace, indices: ("n", "r"), shape: (.tokens, .fixed(2)), rowStride: Extent(1, perToken: 1))
        XCTAssertNotNil(Contraction(growing, x, a, accumulate: false).lowered, "n + 1 ≥ 2 for every n ≥ 1")
    }

    func testExtentComparisonForEveryTokenCount() {
        XCTAssertFalse(Extent(5000, perToken: -1).isAtLeast(.fixed(2)))
        XCTAssertTrue(Extent(1, perToken: 1).isAtLeast(.fixed(2)))
        XCTAssertTrue(Extent(3, perToken: 2).isAtLeast(Extent(4, perToken: 1)))
        XCTAssertFalse(Extent(3, perToken: 2).isAtLeast(Extent(5, perToken: 1)))
    }
}
