import XCTest
import AdaptRuntime

/// `Kernels.gemm` against a naive float64 loop, through every path it takes:
/// both transposes, GEMV for one row or one column, strided operands, and the
/// TBB split along rows or columns.
final class KernelsTests: XCTestCase {
    private var seed: UInt64 = 1

    private func random(_ count: Int) -> [Float] {
        (0..<count).map { _ in
            seed = seed &* 6364136223846793005 &+ 1442695040888963407
            return Float(Int(seed >> 40) % 2001 - 1000) / 1000
        }
    }

    private func check(m: Int, n: Int, k: Int, transA: Bool, transB: Bool, beta: Float, threads: Int, pad: Int = 0,
                       line: UInt = #line) {
        // Stored shapes (with `pad` extra columns so row strides exceed widths).
        let (aRows, aCols) = transA ? (k, m) : (m, k)
        let (bRows, bCols) = transB ? (n, k) : (k, n)
        let (lda, ldb, ldc) = (aCols + pad, bCols + pad, n + pad)
        let a = random(aRows * lda), b = random(bRows * ldb), c0 = random(m * ldc)
        var c = c0
        let alpha: Float = 0.75
        a.withUnsafeBufferPointer { a in
            b.withUnsafeBufferPointer { b in
                c.withUnsafeMutableBufferPointer { c in
                    Kernels.gemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a.baseAddress!, lda: lda,
                                 b: b.baseAddress!, ldb: ldb, beta: beta, c: c.baseAddress!, ldc: ldc, threads: threads)
                }
            }
        }
        var worst = 0.0
        for i in 0..<m {
            for j in 0..<n {
                var sum = 0.0
                for p in 0..<k {
                    let av = transA ? a[p * lda + i] : a[i * lda + p]
                    let bv = transB ? b[j * ldb + p] : b[p * ldb + j]
                    sum += Double(av) * Double(bv)
                }
                let expected = Double(alpha) * sum + Double(beta) * Double(c0[i * ldc + j])
                worst = max(worst, abs(Double(c[i * ldc + j]) - expected) / max(1, abs(expected)))
            }
            for j in n..<ldc { XCTAssertEqual(c[i * ldc + j], c0[i * ldc + j], "padding written", line: line) }
        }
        // float32 rounding of a k-term sum grows like √k: the bound holds to k = 256 and scales past it.
        XCTAssertLessThan(worst, 1e-5 * max(1, (Double(k) / 256).squareRoot()), "m \(m) n \(n) k \(k) transA \(transA) transB \(transB) beta \(beta) threads \(threads)", line: line)
    }

    /// Thin shapes: the vectorised kernel (CKernels) takes a transposed B with
    /// k ≤ 8 (y += z·Bᵀ), OpenBLAS the rest; both transposes of each operand,
    /// full 16-column blocks and tails, beta 0 and 1, strided operands.
    func testThinProducts() {
        for (n, k) in [(16, 1), (37, 3), (1024, 8), (40, 32), (100, 64), (8, 1024), (3, 77), (16, 2000)] {
            for transA in [false, true] {
                for transB in [false, true] {
                    for beta: Float in [0, 1] {
                        check(m: 5, n: n, k: k, transA: transA, transB: transB, beta: beta, threads: 1, pad: 3)
                        check(m: 64, n: n, k: k, transA: transA, transB: transB, beta: beta, threads: 2)
                    }
                }
            }
        }
    }

    func testEveryTransposeAndShapeClass() {
        // (m, n, k): one row (GEMV), one column (GEMV), small, and large enough to split.
        let shapes = [(1, 37, 19), (23, 1, 17), (5, 7, 3), (300, 64, 120), (40, 500, 110), (1, 3000, 700)]
        for (m, n, k) in shapes {
            for transA in [false, true] {
                for transB in [false, true] {
                    for threads in [1, 2] {
                        check(m: m, n: n, k: k, transA: transA, transB: transB, beta: 0, threads: threads)
                        check(m: m, n: n, k: k, transA: transA, transB: transB, beta: 1, threads: threads, pad: 3)
                    }
                }
            }
        }
    }

    func testEmptyInnerDimensionScalesByBeta() {
        check(m: 4, n: 5, k: 0, transA: false, transB: false, beta: 0, threads: 1)
        check(m: 4, n: 5, k: 0, transA: false, transB: true, beta: 1, threads: 1)
    }

    func testParallelForCoversEveryIndexOnce() {
        for threads in [0, 1, 2, 3] {
            for (count, grain) in [(0, 1), (1, 1), (7, 1), (1000, 16), (1001, 1000)] {
                var hits = [Int](repeating: 0, count: count)
                hits.withUnsafeMutableBufferPointer { hits in
                    Parallel.forEach(count, grain: grain, threads: threads) { range in
                        for i in range { hits[i] += 1 }
                    }
                }
                XCTAssertEqual(hits, [Int](repeating: 1, count: count), "count \(count) grain \(grain) threads \(threads)")
            }
        }
    }

    /// Bitwise the same C for every thread count (DESIGN's determinism contract):
    /// products above the threshold are cut into FixedBlocks from the shape, so
    /// 3 threads (an uneven share) run exactly the calls 1 thread runs. Shapes:
    /// a row split, a column split, a GEMV split, each with a ragged last block.
    func testResultsAreBitwiseIdenticalForEveryThreadCount() {
        for (m, n, k) in [(1000, 72, 512), (40, 3001, 100), (1, 5000, 1000), (333, 333, 300)] {
            for (transA, transB) in [(false, false), (false, true), (true, false), (true, true)] {
                let (lda, ldb) = (transA ? m : k, transB ? k : n)
                let a = random(m * k), b = random(k * n), c0 = random(m * n)
                var results: [Int: [Float]] = [:]
                for threads in [1, 2, 3, 4, 0] {
                    var c = c0
                    a.withUnsafeBufferPointer { a in
                        b.withUnsafeBufferPointer { b in
                            c.withUnsafeMutableBufferPointer { c in
                                Kernels.gemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: 0.5, a: a.baseAddress!, lda: lda,
                                             b: b.baseAddress!, ldb: ldb, beta: 1, c: c.baseAddress!, ldc: n, threads: threads)
                            }
                        }
                    }
                    results[threads] = c
                }
                XCTAssertGreaterThanOrEqual(2 * m * n * k, Kernels.parallelThreshold, "the shape must split")
                for threads in [2, 3, 4, 0] {
                    XCTAssertTrue(results[threads]! == results[1]!, "m \(m) n \(n) k \(k) transA \(transA) transB \(transB): threads \(threads) differs from 1")
                }
            }
        }
    }
}
