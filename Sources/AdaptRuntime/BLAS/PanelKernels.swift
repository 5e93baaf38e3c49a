import CKernels

/// Products whose right operand `prepare` stored as panels (the planner's
/// `PanelPacking`): `C[m, W·panels] = alpha·op(A)·B + beta·C` with B `[k, W·panels]`
/// held panel after panel, each `[k][W]`. This is the thin last step of an
/// adapter's forward, `y += t·Bᵀ`, read in the order the kernel consumes it.
extension Kernels {
    /// Columns per panel (`ADAPTC_PANEL_WIDTH` of the C kernel).
    public static let panelWidth = Int(ADAPTC_PANEL_WIDTH)

    /// Large products are cut into `FixedBlocks` of whole panels, spread over
    /// TBB; every element is summed the same way in any block, so results do
    /// not depend on the thread count.
    public static func panelGemm(
        transA: Bool, m: Int, panels: Int, k: Int, alpha: Float, a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int, threads: Int = 1
    ) {
        if m <= 0 || panels <= 0 { return }
        let width = panelWidth
        if k <= 0 {
            gemm(transA: transA, transB: false, m: m, n: panels * width, k: 0, alpha: alpha, a: a, lda: lda,
                 b: b, ldb: width, beta: beta, c: c, ldc: ldc)
            return
        }
        inBlocks(panels, unitWork: 2 * m * k * width, panel: 1, threads: threads) { q in
            adaptc_panel_gemm(transA, m, q.count * width, k, alpha, a, lda, b + q.lowerBound * k * width,
                              beta, c + q.lowerBound * width, ldc)
        }
    }

    /// `C[i, r] = beta·C + alpha·Σ_q Σ_j A[i, W·q + j]·packed[q][r][j]` for i < m,
    /// r < k: the gradient of `panelGemm`'s left operand, from the same packed
    /// B. C[i, r] sits at `c + i·cRow + r·cRank`. Large products are cut into
    /// fixed blocks of rows.
    public static func panelDot(
        m: Int, panels: Int, k: Int, alpha: Float, a: UnsafePointer<Float>, lda: Int, packed: UnsafePointer<Float>,
        beta: Float, c: UnsafeMutablePointer<Float>, cRow: Int, cRank: Int, threads: Int = 1
    ) {
        if m <= 0 || k <= 0 { return }
        inBlocks(m, unitWork: 2 * k * panelWidth * panels, panel: 2, threads: threads) { rows in
            adaptc_panel_dot(rows.count, panels, k, alpha, a + rows.lowerBound * lda, lda, packed, beta,
                             c + rows.lowerBound * cRow, cRow, cRank)
        }
    }

    /// `body` on each `FixedBlocks` block of `extent` units (`unitWork` flops each)
    /// over TBB; one block at one thread or below the parallel threshold. The
    /// panel kernels sum each element the same way in any block, so the split
    /// does not change results.
    private static func inBlocks(_ extent: Int, unitWork: Int, panel: Int, threads: Int, _ body: (Range<Int>) -> Void) {
        let blocks = threads == 1 || extent * unitWork < parallelThreshold
            ? FixedBlocks(whole: extent) : FixedBlocks(extent: extent, unitWork: unitWork, panel: panel)
        Parallel.forEach(blocks.count, threads: threads) { range in
            for part in range { body(blocks[part]) }
        }
    }

    /// Runs a lowered step that is a panel product (`GEMMStep.panelProduct`),
    /// with sizes for n tokens and its operands' base addresses: the one
    /// dispatch the interpreter and generated code share.
    public static func panelProduct(
        _ product: PanelProduct, transA: Bool, m: Int, n: Int, k: Int, alpha: Float,
        a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
        beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int, panels: Int, threads: Int
    ) {
        switch product {
        case .multiply:
            panelGemm(transA: transA, m: m, panels: panels, k: k, alpha: alpha, a: a, lda: lda, b: b, beta: beta,
                      c: c, ldc: ldc, threads: threads)
        case .dot(_, let transposed):
            // Left is A (dy) and right the packed B, or, transposed, the other way round.
            if transposed {
                panelDot(m: n, panels: panels, k: m, alpha: alpha, a: b, lda: ldb, packed: a, beta: beta, c: c,
                         cRow: 1, cRank: ldc, threads: threads)
            } else {
                panelDot(m: m, panels: panels, k: n, alpha: alpha, a: a, lda: lda, packed: b, beta: beta, c: c,
                         cRow: ldc, cRank: 1, threads: threads)
            }
        }
    }
}
