import CKernels

/// Products whose right operand `prepare` stored as panels (the planner's
/// `PanelPacking`): `C[m, W·panels] = alpha·op(A)·B + beta·C` with B `[k, W·panels]`
/// held panel after panel, each `[k][W]`. This is the thin last step of an
/// adapter's forward, `y += t·Bᵀ`, read in the order the kernel consumes it.
/// The same kernels read an unpacked B in place (`panelStride`, `kStride`):
/// the other thin products of forward, backward and finishBackward, where
/// OpenBLAS spends more time re-arranging its operands than multiplying.
extension Kernels {
    /// Columns per panel (`ADAPTC_PANEL_WIDTH` of the C kernel).
    public static let panelWidth = Int(ADAPTC_PANEL_WIDTH)

    /// Large products are cut into `FixedBlocks` of whole panels, spread over
    /// TBB; every element is summed the same way in any block, so results do
    /// not depend on the thread count.
    /// B[p, W·q + j] is at `b + q·panelStride + p·kStride + j`: packed panels by
    /// default (`panelStride` W·k, `kStride` W), a row-major B of leading
    /// dimension ld with `panelStride` W, `kStride` ld.
    public static func panelGemm(
        transA: Bool, m: Int, panels: Int, k: Int, alpha: Float, a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, panelStride: Int? = nil, kStride: Int? = nil, beta: Float,
        c: UnsafeMutablePointer<Float>, ldc: Int, threads: Int = 1
    ) {
        if m <= 0 || panels <= 0 { return }
        let width = panelWidth
        if k <= 0 {
            gemm(transA: transA, transB: false, m: m, n: panels * width, k: 0, alpha: alpha, a: a, lda: lda,
                 b: b, ldb: width, beta: beta, c: c, ldc: ldc)
            return
        }
        let panelStride = panelStride ?? k * width, kStride = kStride ?? width
        inBlocks(panels, unitWork: 2 * m * k * width, panel: 1, threads: threads) { q in
            adaptc_panel_gemm(transA, m, q.count * width, k, alpha, a, lda, b + q.lowerBound * panelStride,
                              panelStride, kStride, beta, c + q.lowerBound * width, ldc)
        }
    }

    /// `C[i, r] = beta·C + alpha·Σ_q Σ_j A[i, W·q + j]·B[r, W·q + j]` for i < m,
    /// r < k: the gradient of `panelGemm`'s left operand, from the same packed
    /// B, or any `A·Bᵀ` with few columns. B[r, W·q + j] is at
    /// `packed + q·panelStride + r·rankStride + j` (packed by default:
    /// `panelStride` W·k, `rankStride` W). C[i, r] sits at `c + i·cRow + r·cRank`.
    /// Large products are cut into fixed blocks of rows.
    public static func panelDot(
        m: Int, panels: Int, k: Int, alpha: Float, a: UnsafePointer<Float>, lda: Int, packed: UnsafePointer<Float>,
        panelStride: Int? = nil, rankStride: Int? = nil,
        beta: Float, c: UnsafeMutablePointer<Float>, cRow: Int, cRank: Int, threads: Int = 1
    ) {
        if m <= 0 || k <= 0 { return }
        let panelStride = panelStride ?? k * panelWidth, rankStride = rankStride ?? panelWidth
        inBlocks(m, unitWork: 2 * k * panelWidth * panels, panel: 2, threads: threads) { rows in
            adaptc_panel_dot(rows.count, panels, k, alpha, a + rows.lowerBound * lda, lda, packed, panelStride,
                             rankStride, beta, c + rows.lowerBound * cRow, cRow, cRank)
        }
    }

    /// `body` on each `FixedBlocks` block of `extent` units (`unitWork` flops each)
    /// over TBB; one block at one thread or below the parallel threshold. The
    /// panel kernels sum each element the same way in any block, so the split
    /// does not change results.
    private static func inBlocks(_ extent: Int, unitWork: Int, panel: Int, threads: Int, _ body: (Range<Int>) -> Void) {
        let blocks = threads == 1 || extent * unitWork < parallelThreshold
            ? FixedBlocks(whole: extent) : FixedBlocks(extent: extent, unitWork: unitWork, panel: panel)
        blocks.forEach(threads: threads, body)
    }

    /// Runs a lowered step that is a panel product (`GEMMStep.panelProduct`),
    /// with sizes for n tokens, its operands' base addresses and B's strides
    /// (`innerStride`: multiply's k stride, dot's rank stride): the one
    /// dispatch the interpreter and generated code share.
    public static func panelProduct(
        _ product: PanelProduct, transA: Bool, m: Int, n: Int, k: Int, alpha: Float,
        a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
        beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int, panels: Int, panelStride: Int, innerStride: Int,
        threads: Int
    ) {
        switch product {
        case .multiply:
            panelGemm(transA: transA, m: m, panels: panels, k: k, alpha: alpha, a: a, lda: lda, b: b,
                      panelStride: panelStride, kStride: innerStride, beta: beta, c: c, ldc: ldc, threads: threads)
        case .dot(_, let transposed, _, _):
            // Left is A (the many rows) and right B (the few), or, transposed, the other way round.
            if transposed {
                panelDot(m: n, panels: panels, k: m, alpha: alpha, a: b, lda: ldb, packed: a, panelStride: panelStride,
                         rankStride: innerStride, beta: beta, c: c, cRow: 1, cRank: ldc, threads: threads)
            } else {
                panelDot(m: m, panels: panels, k: n, alpha: alpha, a: a, lda: lda, packed: b, panelStride: panelStride,
                         rankStride: innerStride, beta: beta, c: c, cRow: ldc, cRank: 1, threads: threads)
            }
        }
    }
}
