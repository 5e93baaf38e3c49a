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
        let work = 2 * m * k * width * panels
        let blocks = threads == 1 || work < parallelThreshold
            ? FixedBlocks(whole: panels) : FixedBlocks(extent: panels, unitWork: 2 * m * k * width, panel: 1)
        Parallel.forEach(blocks.count, threads: threads) { range in
            for part in range {
                let q = blocks[part]
                adaptc_panel_gemm(transA, m, q.count * width, k, alpha, a, lda, b + q.lowerBound * k * width,
                                  beta, c + q.lowerBound * width, ldc)
            }
        }
    }
}
