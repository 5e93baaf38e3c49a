/// Maxima that see NaN. `Sequence.max()` and `Swift.max(_:_:)` compare with
/// `<`, which is false for NaN, so a NaN is kept only when it comes first and
/// dropped anywhere else: an unwritten or poisoned output would pass a
/// `≤ tolerance` check. These return NaN (`maxFailingOnNaN`) or infinity
/// (the error measures) instead, so every `XCTAssertLessThanOrEqual` fails.

/// The largest value; NaN when any value is NaN; `empty` when there are none.
public func maxFailingOnNaN<S: Sequence>(_ values: S, empty: Double = 0) -> Double where S.Element == Double {
    var result: Double?
    for value in values {
        if value.isNaN { return .nan }
        result = Swift.max(result ?? value, value)
    }
    return result ?? empty
}

/// max |got − want| / max |want| (relative to the tensor's scale, so entries
/// near zero do not blow it up; absolute when `want` is all zero). Infinity
/// when either side holds a NaN or an infinity, or the counts differ.
public func maxRelativeError(_ got: [Double], _ want: [Double]) -> Double {
    guard got.count == want.count,
          got.allSatisfy(\.isFinite), want.allSatisfy(\.isFinite) else { return .infinity }
    let scale = maxFailingOnNaN(want.lazy.map(abs))
    let worst = maxFailingOnNaN(zip(got, want).lazy.map { abs($0 - $1) })
    return scale == 0 ? worst : worst / scale
}

public func maxRelativeError(_ got: [Float], _ want: [Double]) -> Double {
    maxRelativeError(got.map(Double.init), want)
}

public func maxRelativeError(_ got: [Float], _ want: [Float]) -> Double {
    maxRelativeError(got.map(Double.init), want.map(Double.init))
}
