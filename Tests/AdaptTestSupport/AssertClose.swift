import XCTest

/// max |got − expected| / max |expected| ≤ tolerance: error relative to the
/// tensor's scale, so entries near zero do not dominate. Any NaN or infinity fails.
public func assertClose(_ got: [Float], _ expected: [Double], _ what: String, tolerance: Double = 1e-5,
                        file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(got.count, expected.count, what, file: file, line: line)
    // NaN anywhere fails: `max()` would skip it, and an unwritten output is often NaN.
    if let bad = got.firstIndex(where: { !$0.isFinite }) ?? expected.firstIndex(where: { !$0.isFinite }) {
        XCTFail("\(what): non-finite value at \(bad) (got \(bad < got.count ? got[bad] : .nan))", file: file, line: line)
        return
    }
    let scale = max(expected.map { abs($0) }.max() ?? 0, 1e-30)
    let error = zip(got, expected).map { abs(Double($0) - $1) }.max() ?? 0
    XCTAssertLessThanOrEqual(error / scale, tolerance, "\(what): relative error \(error / scale)", file: file, line: line)
}
