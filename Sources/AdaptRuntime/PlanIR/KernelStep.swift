/// How one lowered plan step runs: the runtime kernel it calls, decided once
/// here for both executors (issue 23: the lowered-step-to-kernel switch was
/// written twice, in the emitter and in the interpreter, and the two chose
/// differently for small products). The interpreter calls the kernel named
/// here with sizes from the plan; the emitter writes the same call with
/// literal sizes, or the loops of `.loops` and `.elementwise(inline: true)`
/// out in full — the same arithmetic in the same order, so both give the same
/// bits.
public enum KernelStep: Hashable, Sendable {
    /// A small fixed-size product as plain loops: `C[i, j] (+)= alpha·Σ_p op(A)[i, p]·op(B)[p, j]`,
    /// p in order, repeated over the step's independent loops (`Kernels.smallProduct`).
    case loops(GEMMStep)
    /// A panel product (`GEMMStep.panelProduct`): a packed factor, or a thin product read in place.
    case panel(GEMMStep, PanelProduct)
    /// OpenBLAS (GEMV for one row, TBB splits for large products), repeated over
    /// the modes that could not merge into it (`Kernels.loopedGemm`; none: `Kernels.gemm`).
    case gemm(GEMMStep)
    /// An element-wise step (`Kernels.elementwise`); `inline`: small and fixed-size,
    /// so the emitter writes its loops out rather than calling the runtime's.
    case elementwise(ElementwiseStep, inline: Bool)
    /// `y = op(x)` element by element (`Kernels.map`).
    case map(MapStep)
    /// Per-row Euclidean norms (`Kernels.rowNorm`).
    case rowNorm(RowNormStep)
    /// Each line scaled by a vector entry (`Kernels.rowScale`).
    case rowScale(RowScaleStep)

    /// Products up to this many multiply-adds with fixed sizes run as `.loops`.
    public static let inlineLimit = 4096
    /// Fixed-size element-wise steps above this many elements are not written out:
    /// inline loops for hundreds of pairs' panel copies made files slow to compile.
    public static let inlineElementLimit = 4096

    public init(_ lowered: Lowered) {
        switch lowered {
        case .gemm(let g):
            let fixed = g.m.isFixed && g.n.isFixed && g.k.isFixed && g.loops.allSatisfy { $0.extent.isFixed && !$0.reduces }
            let work = g.m.constant * g.n.constant * g.k.constant * g.loops.reduce(1) { $0 * $1.extent.constant }
            let product = g.panelProduct
            // Small fixed-size products are loops, whichever kernel would take them.
            if fixed && work <= KernelStep.inlineLimit && (g.loops.isEmpty || product == nil) {
                self = .loops(g)
            } else if let product {
                self = .panel(g, product)
            } else {
                self = .gemm(g)
            }
        case .elementwise(let e):
            let fixed = e.dims.allSatisfy { $0.extent.isFixed }
            self = .elementwise(e, inline: !(fixed && e.dims.reduce(1, { $0 * $1.extent.constant }) > KernelStep.inlineElementLimit))
        }
    }

    /// The kernel of any plan step (nil: a contraction that does not lower).
    public init?(_ step: PlanStep) {
        switch step {
        case .contract(let c):
            guard let lowered = c.lowered else { return nil }
            self.init(lowered)
        case .map(let s): self = .map(s)
        case .rowNorm(let s): self = .rowNorm(s)
        case .rowScale(let s): self = .rowScale(s)
        }
    }
}
