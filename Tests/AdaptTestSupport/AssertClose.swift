import XCTest

/// max |got − expected| / max |expected| ≤ tolerance: error relative to the
/// tensor's scale, so entries near zero do not dominate.
public func assertClose(_ got: [Float], _ expected: [Double], _ what: String, tolerance: Double = 1e-5,
                        file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(got.count, expected.count, what, file: file, line: line)
    let scale = max(expected.map { abs($0) }.max() ?? 0, 1e-30)
    let error = zip(got, expected).map { abs(Double($0) - $1) }.max() ?? 0
    XCTAssertLessThanOrEqual(error / scale, tolerance, "\(what): relative error \(error / scale)", file: file, line: line)
}
