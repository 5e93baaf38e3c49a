import XCTest
@testable import AdaptRuntime

/// pissa / milora / olora factors for one matrix, against float64 definitions.
final class PrincipalInitTests: XCTestCase {
    let known = KnownSVD(m: 40, n: 56, sigma: (1...40).map { 2 / Double($0) }, seed: 5)

    private func factors(_ method: PrincipalInit.Method, rank: Int, scale: Double) throws -> (PrincipalInit.Factors, [Float]) {
        let w = known.matrix.map(Float.init)
        let f = try w.withUnsafeBufferPointer {
            try PrincipalInit.factors($0, out: 40, in: 56, rank: rank, scale: scale, method: method, decomposition: .exact)
        }
        return (f, w)
    }

    /// s·B·A in float64, row-major [40, 56].
    private func scaledProduct(_ f: PrincipalInit.Factors, rank: Int, scale: Double) -> [Double] {
        var p = [Double](repeating: 0, count: 40 * 56)
        for i in 0..<40 { for k in 0..<rank { for j in 0..<56 {
            p[i * 56 + j] += scale * Double(f.b[i * rank + k]) * Double(f.a[k * 56 + j])
        } } }
        return p
    }

    func testPissaIsTheTruncationAndTheResidualTheRest() throws {
        let (f, w) = try factors(.pissa, rank: 5, scale: 2.5)
        let truncation = known.sum(0..<5)
        let p = scaledProduct(f, rank: 5, scale: 2.5)
        XCTAssertLessThan(frobeniusDistance(p.map(Float.init), truncation) / frobeniusNorm(truncation), 1e-5)
        // PEFT's split: A and B carry √(σ/s) each, so A's rows and B's columns have equal norms.
        for k in 0..<5 {
            let a = (0..<56).reduce(0.0) { $0 + Double(f.a[k * 56 + $1] * f.a[k * 56 + $1]) }
            let b = (0..<40).reduce(0.0) { $0 + Double(f.b[$1 * 5 + k] * f.b[$1 * 5 + k]) }
            XCTAssertEqual(a, known.sigma[k] / 2.5, accuracy: 1e-5)
            XCTAssertEqual(b, known.sigma[k] / 2.5, accuracy: 1e-5)
        }
        var residual = w
        residual.withUnsafeMutableBufferPointer { PrincipalInit.subtract(f, scale: 2.5, from: $0, out: 40, in: 56, rank: 5) }
        let rest = known.sum(5..<40)
        XCTAssertLessThan(frobeniusDistance(residual, rest) / frobeniusNorm(rest), 1e-5)
    }

    func testMiloraTakesTheWeakestTriplets() throws {
        let (f, _) = try factors(.milora, rank: 3, scale: 1)
        let weakest = known.sum(37..<40)
        XCTAssertLessThan(frobeniusDistance(scaledProduct(f, rank: 3, scale: 1).map(Float.init), weakest) / frobeniusNorm(weakest), 1e-4)
    }

    /// OLoRA: B = Q[:, :r] orthonormal, B·A the projection of W onto the span of
    /// its first r columns' space… of W's first r columns (QR's nested spans):
    /// B·A = P·W with P the projector onto span(W[:, 0..<r]), by Gram–Schmidt in float64.
    func testOloraIsTheQRSplit() throws {
        let (f, _) = try factors(.olora, rank: 4, scale: 3)
        let w = known.matrix
        let columns = (0..<4).map { j in (0..<40).map { w[$0 * 56 + j] } }
        var basis: [[Double]] = []
        for var x in columns {
            for _ in 0..<2 { for q in basis { let d = zip(q, x).reduce(0) { $0 + $1.0 * $1.1 }; for i in 0..<40 { x[i] -= d * q[i] } } }
            let norm = x.reduce(0) { $0 + $1 * $1 }.squareRoot()
            basis.append(x.map { $0 / norm })
        }
        var projection = [Double](repeating: 0, count: 40 * 56)
        for q in basis { for j in 0..<56 {
            let d = (0..<40).reduce(0.0) { $0 + q[$1] * w[$1 * 56 + j] }
            for i in 0..<40 { projection[i * 56 + j] += q[i] * d }
        } }
        // The factors carry no scale (PEFT's olora_init): B·A, not s·B·A, is the projection.
        XCTAssertLessThan(frobeniusDistance(scaledProduct(f, rank: 4, scale: 1).map(Float.init), projection) / frobeniusNorm(projection), 1e-5)
        for a in 0..<4 { for b in 0..<4 {
            let dot = (0..<40).reduce(0.0) { $0 + Double(f.b[$1 * 4 + a]) * Double(f.b[$1 * 4 + b]) }
            XCTAssertEqual(dot, a == b ? 1 : 0, accuracy: 1e-5)
        } }
    }
}
