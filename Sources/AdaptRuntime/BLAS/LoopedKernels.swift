/// The two general building blocks behind every lowered plan step (see
/// `Lowered`): a GEMM repeated over the modes that could not merge into it,
/// and an element-wise loop. The interpreter calls them with sizes from the
/// plan; generated code calls `Kernels.gemm` and writes element-wise loops
/// itself, with literal sizes.
extension Kernels {
    /// One loop around a kernel with concrete sizes: extent and per-operand strides.
    public struct Loop: Sendable {
        public var extent: Int, left: Int, right: Int, output: Int
        public var reduces: Bool
        public init(extent: Int, left: Int, right: Int, output: Int, reduces: Bool = false) {
            self.extent = extent
            self.left = left
            self.right = right
            self.output = output
            self.reduces = reduces
        }
    }

    /// `C = alpha·op(A)·op(B) + beta·C` for every index of `loops`. Loops that
    /// reduce (a summed mode BLAS could not take) run in order into one output
    /// block; the others are independent and, with enough work, run side by
    /// side on TBB. Each output block is always computed by one task in one
    /// order, so results do not depend on the thread count.
    public static func loopedGemm(
        loops: [Loop], transA: Bool, transB: Bool, m: Int, n: Int, k: Int,
        alpha: Float, a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
        beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int, threads: Int
    ) {
        if loops.isEmpty {
            gemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb,
                 beta: beta, c: c, ldc: ldc, threads: threads)
            return
        }
        let independent = loops.filter { !$0.reduces }, reducing = loops.filter(\.reduces)
        let blocks = independent.reduce(1) { $0 * $1.extent }
        let steps = reducing.reduce(1) { $0 * $1.extent }
        if blocks == 0 || m == 0 || n == 0 { return }
        func block(_ index: Int, threads: Int) {
            let (l0, r0, o0) = offsets(index, independent)
            if steps == 0 {
                // Nothing to sum: C = beta·C.
                gemm(transA: transA, transB: transB, m: m, n: n, k: 0, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb,
                     beta: beta, c: c + o0, ldc: ldc, threads: threads)
                return
            }
            for step in 0..<steps {
                let (l1, r1, _) = offsets(step, reducing)
                gemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a + l0 + l1, lda: lda,
                     b: b + r0 + r1, ldb: ldb, beta: step == 0 ? beta : 1, c: c + o0, ldc: ldc, threads: threads)
            }
        }
        let work = 2 * m * n * k * blocks * steps
        if blocks > 1 && threads != 1 && work >= parallelThreshold {
            Parallel.forEach(blocks, threads: threads) { range in
                for i in range { block(i, threads: 1) }
            }
        } else {
            for i in 0..<blocks { block(i, threads: threads) }
        }
    }

    /// The (left, right, output) offsets of flat index `index` over `dims`, the last mode fastest.
    static func offsets(_ index: Int, _ dims: some BidirectionalCollection<Loop>) -> (Int, Int, Int) {
        var rest = index, (l, r, o) = (0, 0, 0)
        for d in dims.reversed() {
            let i = rest % d.extent
            rest /= d.extent
            l += i * d.left; r += i * d.right; o += i * d.output
        }
        return (l, r, o)
    }

    /// `C[i, j] (+)= alpha·Σ_p op(A)[i, p]·op(B)[p, j]` by plain loops, p in
    /// order, for every index of the independent `loops` (outermost first):
    /// `KernelStep.loops`, the small fixed-size products generated code writes
    /// out with literal bounds in exactly this order, so both give the same bits.
    public static func smallProduct(
        loops: [Loop], transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
        a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
        accumulate: Bool, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        let count = loops.reduce(1) { $0 * $1.extent }
        for index in 0..<count {
            let (la, lb, lc) = offsets(index, loops)
            let pa = a + la, pb = b + lb, pc = c + lc
            for i in 0..<m {
                for j in 0..<n {
                    var sum: Float = 0
                    for p in 0..<k { sum += pa[transA ? p * lda + i : i * lda + p] * pb[transB ? j * ldb + p : p * ldb + j] }
                    let value = alpha == 1 ? sum : alpha * sum
                    pc[i * ldc + j] = accumulate ? pc[i * ldc + j] + value : value
                }
            }
        }
    }

    /// `out = alpha·a·b (+ out)` over `dims` (outermost first); `b` nil copies
    /// `alpha·a`. Strides of 0 broadcast an operand along a mode.
    public static func elementwise(
        dims: [Loop], alpha: Float, accumulate: Bool,
        a: UnsafePointer<Float>, b: UnsafePointer<Float>?, out: UnsafeMutablePointer<Float>
    ) {
        guard let inner = dims.last else {
            let value = alpha * a.pointee * (b?.pointee ?? 1)
            out.pointee = accumulate ? out.pointee + value : value
            return
        }
        let outer = dims.dropLast()
        let count = outer.reduce(1) { $0 * $1.extent }
        for index in 0..<count {
            // Decoded inline: through the generic `offsets` this loop ran prepare's panel
            // copies 1.4–1.7× slower (Tools/bench --compare, 2026-12-07).
            var rest = index, (ia, ib, io) = (0, 0, 0)
            for d in outer.reversed() {
                let i = rest % d.extent
                rest /= d.extent
                ia += i * d.left; ib += i * d.right; io += i * d.output
            }
            let pa = a + ia, po = out + io
            if let b {
                let pb = b + ib
                for i in 0..<inner.extent {
                    let value = alpha * pa[i * inner.left] * pb[i * inner.right]
                    po[i * inner.output] = accumulate ? po[i * inner.output] + value : value
                }
            } else {
                for i in 0..<inner.extent {
                    let value = alpha * pa[i * inner.left]
                    po[i * inner.output] = accumulate ? po[i * inner.output] + value : value
                }
            }
        }
    }
}
