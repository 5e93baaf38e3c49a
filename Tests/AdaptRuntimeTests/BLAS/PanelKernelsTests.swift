import XCTest
import AdaptRuntime
import AdaptTestSupport

/// `Kernels.panelGemm` (a right operand packed as panels in prepare) against a
/// float64 loop over the unpacked product, on shapes that reach every tile of
/// the kernel: rows in whole groups of 8 and a remainder, an even and an odd
/// panel count, both layouts of A, beta 0 over NaN, and the parallel split.
final class PanelKernelsTests: XCTestCase {
    private var random = TestRandom(seed: 77)

    /// B [k, W·panels] into panels: panel q holds B[p, W·q + j] at (q·k + p)·W + j.
    private func pack(_ b: [Float], k: Int, panels: Int) -> [Float] {
        let width = Kernels.panelWidth, n = width * panels
        var packed = [Float](repeating: 0, count: k * n)
        for q in 0..<panels { for p in 0..<k { for j in 0..<width { packed[(q * k + p) * width + j] = b[p * n + q * width + j] } } }
        return packed
    }

    private func check(m: Int, panels: Int, k: Int, transA: Bool, beta: Float, threads: Int, line: UInt = #line) -> [Float] {
        let n = Kernels.panelWidth * panels, pad = 3
        let lda = (transA ? m : k) + pad, ldc = n + pad
        let a = random.floats((transA ? k : m) * lda), b = random.floats(k * n)
        // beta 0 must not read C: NaN there would leak into the result.
        let c0 = beta == 0 ? [Float](repeating: .nan, count: m * ldc) : random.floats(m * ldc)
        let packed = pack(b, k: k, panels: panels)
        var c = c0
        let alpha: Float = 0.75
        a.withUnsafeBufferPointer { a in
            packed.withUnsafeBufferPointer { b in
                c.withUnsafeMutableBufferPointer { c in
                    Kernels.panelGemm(transA: transA, m: m, panels: panels, k: k, alpha: alpha, a: a.baseAddress!, lda: lda,
                                      b: b.baseAddress!, beta: beta, c: c.baseAddress!, ldc: ldc, threads: threads)
                }
            }
        }
        var expected = [Double](repeating: 0, count: m * n), got = [Float](repeating: 0, count: m * n)
        for i in 0..<m {
            for j in 0..<n {
                var sum = 0.0
                for p in 0..<k { sum += Double(transA ? a[p * lda + i] : a[i * lda + p]) * Double(b[p * n + j]) }
                expected[i * n + j] = Double(alpha) * sum + (beta == 0 ? 0 : Double(beta) * Double(c0[i * ldc + j]))
                got[i * n + j] = c[i * ldc + j]
            }
            // Padding past the n columns is never written.
            for j in n..<ldc where !(c[i * ldc + j].isNaN && c0[i * ldc + j].isNaN) {
                XCTAssertEqual(c[i * ldc + j], c0[i * ldc + j], "padding written at row \(i)", line: line)
            }
        }
        assertClose(got, expected, "panelGemm m \(m) panels \(panels) k \(k) transA \(transA) beta \(beta)", line: line)
        return c
    }

    func testEveryTileAndLayout() {
        for m in [1, 7, 8, 13, 64] {
            for panels in [1, 2, 3] {
                for k in [2, 8, 17] {
                    for transA in [false, true] {
                        _ = check(m: m, panels: panels, k: k, transA: transA, beta: 1, threads: 1)
                    }
                }
            }
        }
        _ = check(m: 13, panels: 3, k: 8, transA: false, beta: 0, threads: 1)
        _ = check(m: 9, panels: 5, k: 64, transA: true, beta: 0.5, threads: 1)
    }

    func testParallelSplitIsBitwiseIdenticalToOneThread() {
        // 64 rows × 67 panels × k 16: above the parallel threshold, an odd panel count.
        let start = random
        let one = check(m: 64, panels: 67, k: 16, transA: false, beta: 1, threads: 1)
        for threads in [2, 3] {
            random = start
            let many = check(m: 64, panels: 67, k: 16, transA: false, beta: 1, threads: threads)
            XCTAssertEqual(one.map(\.bitPattern), many.map(\.bitPattern), "\(threads) threads")
        }
    }
}
