import XCTest
import AdaptRuntime
import AdaptTestSupport

/// `Kernels.panelGemm` (a right operand packed as panels in prepare) against a
/// float64 loop over the unpacked product, on shapes that reach every tile of
/// the kernel: rows in whole groups of 8 and a remainder, an even and an odd
/// panel count, both layouts of A, beta 0 over NaN, and the parallel split;
/// likewise `Kernels.panelDot`, backward's dy·B from the same panels.
final class PanelKernelsTests: XCTestCase {
    private var random = TestRandom(seed: 77)

    /// B [k, W·panels] into panels: panel q holds B[p, W·q + j] at (q·k + p)·W + j.
    private func pack(_ b: [Float], k: Int, panels: Int) -> [Float] {
        let width = Kernels.panelWidth, n = width * panels
        var packed = [Float](repeating: 0, count: k * n)
        for q in 0..<panels { for p in 0..<k { for j in 0..<width { packed[(q * k + p) * width + j] = b[p * n + q * width + j] } } }
        return packed
    }

    /// `inPlace`: B is read where it lies (row-major, leading dimension n + 5) instead of packed.
    private func check(m: Int, panels: Int, k: Int, transA: Bool, beta: Float, threads: Int, inPlace: Bool = false,
                       line: UInt = #line) -> [Float] {
        let n = Kernels.panelWidth * panels, pad = 3
        let lda = (transA ? m : k) + pad, ldc = n + pad
        let a = random.floats((transA ? k : m) * lda), ldb = n + 5, stored = random.floats(k * ldb)
        // B [k, n] as the float64 loop reads it, and its panels as the kernel reads them.
        let b = (0..<k).flatMap { p in stored[(p * ldb)..<(p * ldb + n)] }
        // beta 0 must not read C: NaN there would leak into the result.
        let c0 = beta == 0 ? [Float](repeating: .nan, count: m * ldc) : random.floats(m * ldc)
        let packed = inPlace ? stored : pack(b, k: k, panels: panels)
        var c = c0
        let alpha: Float = 0.75
        a.withUnsafeBufferPointer { a in
            packed.withUnsafeBufferPointer { b in
                c.withUnsafeMutableBufferPointer { c in
                    Kernels.panelGemm(transA: transA, m: m, panels: panels, k: k, alpha: alpha, a: a.baseAddress!, lda: lda,
                                      b: b.baseAddress!, panelStride: inPlace ? Kernels.panelWidth : nil,
                                      kStride: inPlace ? ldb : nil, beta: beta, c: c.baseAddress!, ldc: ldc, threads: threads)
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

    /// B read in place (the thin products of backward and finishBackward): every tile, both layouts of A.
    func testEveryTileWithBInPlace() {
        for m in [1, 8, 13] {
            for panels in [1, 3] {
                for k in [2, 17, 70] {
                    for transA in [false, true] {
                        _ = check(m: m, panels: panels, k: k, transA: transA, beta: 1, threads: 1, inPlace: true)
                    }
                }
            }
        }
        _ = check(m: 8, panels: 2, k: 384, transA: true, beta: 0, threads: 1, inPlace: true)
        // Split over panels between threads: the bits of one thread.
        let start = random
        let one = check(m: 64, panels: 67, k: 16, transA: false, beta: 1, threads: 1, inPlace: true)
        random = start
        XCTAssertEqual(one.map(\.bitPattern), check(m: 64, panels: 67, k: 16, transA: false, beta: 1, threads: 2, inPlace: true)
            .map(\.bitPattern), "in place, 2 threads")
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

    /// dt = dy·Bᵀ with B packed: C[i, r] = beta·C + alpha·Σ_j A[i, j]·B[r, j], C stored either way.
    func testDotOfPackedPanels() {
        let width = Kernels.panelWidth
        for (m, panels, k) in [(1, 1, 2), (7, 3, 8), (13, 2, 12), (64, 5, 17), (5, 4, 64)] {
            for (transposed, inPlace) in [(false, false), (true, false), (false, true), (true, true)] {
                for beta: Float in [0, 1] {
                    let n = width * panels, lda = n + 5, ldb = n + 3
                    let a = random.floats(m * lda), stored = random.floats(k * ldb)  // B [k, n], leading dimension ldb
                    let b = (0..<k).flatMap { r in stored[(r * ldb)..<(r * ldb + n)] }
                    let packed = inPlace ? stored : pack(b, k: k, panels: panels)
                    let (cRow, cRank) = transposed ? (1, m + 2) : (k + 2, 1)
                    let size = transposed ? k * (m + 2) : m * (k + 2)
                    let c0 = beta == 0 ? [Float](repeating: .nan, count: size) : random.floats(size)
                    var c = c0
                    a.withUnsafeBufferPointer { a in
                        packed.withUnsafeBufferPointer { p in
                            c.withUnsafeMutableBufferPointer { c in
                                Kernels.panelDot(m: m, panels: panels, k: k, alpha: 0.5, a: a.baseAddress!, lda: lda, packed: p.baseAddress!,
                                                 panelStride: inPlace ? width : nil, rankStride: inPlace ? ldb : nil,
                                                 beta: beta, c: c.baseAddress!, cRow: cRow, cRank: cRank)
                            }
                        }
                    }
                    var got: [Float] = [], expected: [Double] = []
                    for i in 0..<m {
                        for r in 0..<k {
                            var sum = 0.0
                            for j in 0..<n { sum += Double(a[i * lda + j]) * Double(b[r * n + j]) }
                            let old = beta == 0 ? 0 : Double(beta) * Double(c0[i * cRow + r * cRank])
                            expected.append(0.5 * sum + old)
                            got.append(c[i * cRow + r * cRank])
                        }
                    }
                    assertClose(got, expected, "panelDot m \(m) panels \(panels) k \(k) transposed \(transposed) beta \(beta) in place \(inPlace)")
                }
            }
        }
    }

    /// The dot kernel split between threads gives the bits one thread gives.
    func testDotIsBitwiseIdenticalAcrossThreads() {
        let width = Kernels.panelWidth, (m, panels, k) = (96, 67, 16), n = width * panels
        let a = random.floats(m * n), packed = random.floats(k * n)
        func run(_ threads: Int) -> [Float] {
            var c = [Float](repeating: 0, count: m * k)
            a.withUnsafeBufferPointer { a in
                packed.withUnsafeBufferPointer { p in
                    c.withUnsafeMutableBufferPointer {
                        Kernels.panelDot(m: m, panels: panels, k: k, alpha: 1, a: a.baseAddress!, lda: n, packed: p.baseAddress!,
                                         beta: 0, c: $0.baseAddress!, cRow: k, cRank: 1, threads: threads)
                    }
                }
            }
            return c
        }
        let one = run(1)
        for threads in [2, 3] {
            XCTAssertEqual(one.map(\.bitPattern), run(threads).map(\.bitPattern), "panelDot, \(threads) threads")
        }
    }
}

/// Plain thin GEMMs (no packed copy) lower to the panel kernels with B read in
/// place, in every orientation the lowering produces, and `Kernels.panelProduct`
/// (the interpreter's and generated code's dispatch) computes them as a float64
/// loop over the contraction does.
final class ThinProductLoweringTests: XCTestCase {
    private var random = TestRandom(seed: 78)

    /// Runs `c` (views named "a", "b", "c" bound to the arrays) through its lowering at n tokens.
    private func run(_ c: Contraction, n: Int, _ buffers: inout [String: [Float]]) throws -> PanelProduct {
        guard case .gemm(let g)? = c.lowered, let product = g.panelProduct else {
            XCTFail("\(c) does not lower to a panel product")
            throw CancellationError()
        }
        var a = buffers[g.left.name]!, b = buffers[g.right.name]!, out = buffers[g.output.name]!
        a.withUnsafeBufferPointer { a in
            b.withUnsafeBufferPointer { b in
                out.withUnsafeMutableBufferPointer { o in
                    Kernels.panelProduct(product, transA: g.transLeft, m: g.m.value(tokens: n), n: g.n.value(tokens: n),
                                         k: g.k.value(tokens: n), alpha: c.alpha, a: a.baseAddress!, lda: g.lda.value(tokens: n),
                                         b: b.baseAddress!, ldb: g.ldb.value(tokens: n), beta: c.accumulate ? 1 : 0,
                                         c: o.baseAddress!, ldc: g.ldc.value(tokens: n), panels: product.panels.value(tokens: n),
                                         panelStride: product.strides.panel.value(tokens: n),
                                         innerStride: product.strides.inner.value(tokens: n), threads: 2)
                }
            }
        }
        _ = a
        buffers[g.output.name] = out
        return product
    }

    /// value of element (i, j) of a row-major [rows, columns] view with leading dimension ld.
    private func at(_ v: [Float], _ i: Int, _ j: Int, ld: Int) -> Double { Double(v[i * ld + j]) }

    func testThinProductsLowerToPanelKernels() throws {
        let n = 5, wide = 48, rank = 3
        // dot: c[n, r] = Σ_j a[n, j]·b[r, j]; and with c stored [r, n] (the lowering swaps the operands).
        for transposedOutput in [false, true] {
            let a = MatrixView("a", in: .input, indices: ("n", "j"), shape: (.tokens, .fixed(wide)))
            let b = MatrixView("b", in: .parameters, indices: ("r", "j"), shape: (.fixed(rank), .fixed(wide)))
            let c = transposedOutput
                ? MatrixView("c", in: .workspace, indices: ("r", "n"), shape: (.fixed(rank), .tokens))
                : MatrixView("c", in: .workspace, indices: ("n", "r"), shape: (.tokens, .fixed(rank)))
            var buffers = ["a": random.floats(n * wide), "b": random.floats(rank * wide),
                           "c": [Float](repeating: .nan, count: n * rank)]
            let product = try run(Contraction(c, a, b, alpha: 0.5, accumulate: false), n: n, &buffers)
            guard case .dot(_, let transposed, _, _) = product, transposed == transposedOutput, !product.isPacked else {
                return XCTFail("\(product): not an in-place dot with transposed output \(transposedOutput)")
            }
            var got: [Float] = [], expected: [Double] = []
            for i in 0..<n {
                for r in 0..<rank {
                    expected.append(0.5 * (0..<wide).reduce(0.0) { $0 + at(buffers["a"]!, i, $1, ld: wide) * at(buffers["b"]!, r, $1, ld: wide) })
                    got.append(transposedOutput ? buffers["c"]![r * n + i] : buffers["c"]![i * rank + r])
                }
            }
            assertClose(got, expected, "dot, transposed output \(transposedOutput)")
        }
        // multiply, thin in k (dt·A) and thin in m with a tall B (dtᵀ·x, 40 rows: three passes of 16).
        for (rows, inner, transA) in [(n, rank, false), (rank, 40, true)] {
            let a = transA
                ? MatrixView("a", in: .workspace, indices: ("p", "i"), shape: (.fixed(inner), .fixed(rows)))
                : MatrixView("a", in: .workspace, indices: ("i", "p"), shape: (.fixed(rows), .fixed(inner)))
            let b = MatrixView("b", in: .input, indices: ("p", "j"), shape: (.fixed(inner), .fixed(wide)))
            let c = MatrixView("c", in: .output, indices: ("i", "j"), shape: (.fixed(rows), .fixed(wide)))
            let c0 = random.floats(rows * wide)
            var buffers = ["a": random.floats(rows * inner), "b": random.floats(inner * wide), "c": c0]
            let product = try run(Contraction(c, a, b, accumulate: true), n: n, &buffers)
            guard case .multiply = product, !product.isPacked else { return XCTFail("\(product): not an in-place multiply") }
            var expected: [Double] = []
            for i in 0..<rows {
                for j in 0..<wide {
                    let sum = (0..<inner).reduce(0.0) { p, q in
                        p + (transA ? at(buffers["a"]!, q, i, ld: rows) : at(buffers["a"]!, i, q, ld: inner)) * at(buffers["b"]!, q, j, ld: wide)
                    }
                    expected.append(sum + Double(c0[i * wide + j]))
                }
            }
            assertClose(buffers["c"]!, expected, "multiply rows \(rows) inner \(inner) transA \(transA)")
        }
    }
}
