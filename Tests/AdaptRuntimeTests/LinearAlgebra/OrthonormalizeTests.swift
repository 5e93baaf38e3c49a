import XCTest
@testable import AdaptRuntime

/// CholeskyQR2 and its Householder fallback: orthonormal columns with the
/// same span, for a well-conditioned and a badly conditioned tall matrix.
final class OrthonormalizeTests: XCTestCase {
    func check(columnScales: [Float], file: StaticString = #filePath, line: UInt = #line) throws {
        let (m, n) = (200, columnScales.count)
        var random = SeededRandom(seed: 1, stream: "orthonormalize")
        var a = random.normals(m * n)            // column-major [m, n]
        for j in 0..<n { for i in 0..<m { a[j * m + i] *= columnScales[j] } }
        let original = a
        try LAPACK.orthonormalizeFast(m: m, n: n, a: &a)
        for p in 0..<n { for q in 0..<n {
            let dot = (0..<m).reduce(0.0) { $0 + Double(a[p * m + $1]) * Double(a[q * m + $1]) }
            XCTAssertEqual(dot, p == q ? 1 : 0, accuracy: 1e-5, "QᵀQ[\(p), \(q)]", file: file, line: line)
        } }
        // Same span: each original column equals its projection Q·Qᵀ·a_j.
        for j in 0..<n {
            var residual = 0.0, norm = 0.0
            let coefficients = (0..<n).map { p in (0..<m).reduce(0.0) { $0 + Double(a[p * m + $1]) * Double(original[j * m + $1]) } }
            for i in 0..<m {
                let projection = (0..<n).reduce(0.0) { $0 + coefficients[$1] * Double(a[$1 * m + i]) }
                residual += (projection - Double(original[j * m + i])) * (projection - Double(original[j * m + i]))
                norm += Double(original[j * m + i]) * Double(original[j * m + i])
            }
            XCTAssertLessThan((residual / norm).squareRoot(), 1e-4, "column \(j) leaves the span", file: file, line: line)
        }
    }

    /// The row-major variant (the tall matrix stored row by row, with a
    /// leading dimension wider than it): orthonormal columns, and R with
    /// a_in = Q·R (upper triangular), both paths.
    func checkRows(columnScales: [Float], file: StaticString = #filePath, line: UInt = #line) throws {
        let (m, n, lda) = (200, columnScales.count, columnScales.count + 3)
        var random = SeededRandom(seed: 2, stream: "orthonormalize-rows")
        var a = random.normals(m * lda)          // row-major [m, lda]; columns n..<lda are bystanders
        for i in 0..<m { for j in 0..<n { a[i * lda + j] *= columnScales[j] } }
        let original = a
        var r = [Float](repeating: .nan, count: n * n)
        try LAPACK.orthonormalizeRows(m: m, n: n, a: &a, lda: lda, r: &r)
        for p in 0..<n { for q in 0..<n {
            let dot = (0..<m).reduce(0.0) { $0 + Double(a[$1 * lda + p]) * Double(a[$1 * lda + q]) }
            XCTAssertEqual(dot, p == q ? 1 : 0, accuracy: 1e-5, "QᵀQ[\(p), \(q)]", file: file, line: line)
        } }
        for i in 0..<m { for j in n..<lda { XCTAssertEqual(a[i * lda + j], original[i * lda + j], file: file, line: line) } }
        // Q·R = a_in (R column-major [n, n], upper).
        var worst = 0.0, scale = 0.0
        for i in 0..<m { for j in 0..<n {
            var sum = 0.0
            for k in 0..<n {
                if k > j { XCTAssertEqual(r[j * n + k], 0, "R below the diagonal", file: file, line: line) }
                sum += Double(a[i * lda + k]) * Double(r[j * n + k])
            }
            worst = max(worst, abs(sum - Double(original[i * lda + j])))
            scale = max(scale, abs(Double(original[i * lda + j])))
        } }
        XCTAssertLessThan(worst / scale, 1e-5, "Q·R ≠ a", file: file, line: line)
    }

    func testRowsWellConditioned() throws {
        try checkRows(columnScales: (0..<12).map { 1 / Float($0 + 1) })
    }

    func testRowsIllConditionedFallsBackToHouseholder() throws {
        try checkRows(columnScales: (0..<12).map { powf(10, -Float($0) / 2) })
    }

    func testWellConditionedTakesCholeskyQR2() throws {
        try check(columnScales: (0..<12).map { 1 / Float($0 + 1) })
    }

    /// cond ≈ 1e6 ≫ ε^(−1/2): Cholesky QR alone would lose orthogonality.
    func testIllConditionedFallsBackToHouseholder() throws {
        try check(columnScales: (0..<12).map { powf(10, -Float($0) / 2) })
    }
}
