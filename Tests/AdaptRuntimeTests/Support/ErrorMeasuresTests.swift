import AdaptTestSupport
import XCTest

/// The shared maxima see a NaN wherever it is; `Sequence.max()` does not.
final class ErrorMeasuresTests: XCTestCase {
    func testSequenceMaxDropsALateNaN() {
        // The defect these helpers fix: a NaN after the first element is dropped.
        XCTAssertEqual([1.0, .nan, 0.5].max(), 1)
        XCTAssertEqual(Swift.max(0.0, .nan), 0)
    }

    func testMaxFailingOnNaN() {
        XCTAssertTrue(maxFailingOnNaN([1.0, .nan, 0.5]).isNaN)
        XCTAssertTrue(maxFailingOnNaN([.nan, 1.0]).isNaN)
        XCTAssertEqual(maxFailingOnNaN([1.0, 3, 2]), 3)
        XCTAssertEqual(maxFailingOnNaN([Double](), empty: -1), -1)
        XCTAssertFalse(maxFailingOnNaN([1.0, .nan]) <= 1e9, "a ≤ check fails on NaN")
    }

    func testRelativeErrorIsInfiniteOnNaNOrInfinityAnywhere() {
        let want: [Double] = [1, -2, 4]
        XCTAssertEqual(maxRelativeError([1, -2, 4.5] as [Double], want), 0.125)
        XCTAssertEqual(maxRelativeError([1, .nan, 4] as [Float], want), .infinity)
        XCTAssertEqual(maxRelativeError([1, -2, 4] as [Float], [1, -2, Double.nan]), .infinity)
        XCTAssertEqual(maxRelativeError([1, .infinity, 4] as [Double], want), .infinity)
        XCTAssertEqual(maxRelativeError([1, 2] as [Double], want), .infinity, "counts differ")
        XCTAssertEqual(maxRelativeError([0, 0.5] as [Double], [0, 0]), 0.5, "absolute when want is zero")
    }
}
