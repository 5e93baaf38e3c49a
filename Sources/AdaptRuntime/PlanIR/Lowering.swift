/// How a contraction runs: a GEMM (or GEMV) over merged mode groups, repeated
/// over the modes that cannot merge, or an element-wise loop. The lowering is
/// a pure function of the views, so the interpreter and the emitter compute it
/// the same way and run the same BLAS calls.
public enum Lowered: Hashable, Sendable {
    case gemm(GEMMStep)
    case elementwise(ElementwiseStep)

    /// Multiply-adds ×2 (element-wise steps: one flop per element and factor).
    public var flops: Extent {
        switch self {
        case .gemm(let g): return g.m * g.n * g.k * 2 * g.loops.reduce(Extent.fixed(1)) { $0 * $1.extent }
        case .elementwise(let e): return e.dims.reduce(Extent.fixed(1)) { $0 * $1.extent } * (e.b == nil ? 1 : 2)
        }
    }
}

/// One loop around a kernel: its extent and the stride it advances each operand by.
public struct LoopDim: Hashable, Sendable {
    public var extent: Extent
    public var left: Extent
    public var right: Extent
    public var output: Extent
    /// A summed mode the GEMM could not take: iterations accumulate into the
    /// same output block, so they run in order (first with the step's beta, then += ).
    public var reduces: Bool

    public init(extent: Extent, left: Extent, right: Extent, output: Extent, reduces: Bool) {
        self.extent = extent
        self.left = left
        self.right = right
        self.output = output
        self.reduces = reduces
    }
}

/// `C[m, n] = alpha·op(left)·op(right) + beta·C` with C = output, inside `loops`
/// (outermost first). `left`/`right` are the contraction's operands in the
/// roles BLAS gives them (swapped when only C's transpose is row-major).
public struct GEMMStep: Hashable, Sendable {
    public var left: TensorView
    public var right: TensorView
    public var output: TensorView
    public var transLeft: Bool
    public var transRight: Bool
    public var m: Extent, n: Extent, k: Extent
    public var lda: Extent, ldb: Extent, ldc: Extent
    public var loops: [LoopDim]
}

/// `out = alpha·a·b (+ out)` element by element over `dims` (outermost first);
/// an operand without a mode has stride 0 there (broadcast). `right` is nil for a copy.
public struct ElementwiseStep: Hashable, Sendable {
    public var output: TensorView
    public var a: TensorView
    public var b: TensorView?
    public var dims: [LoopDim]
}

extension Contraction {
    /// The kernel this step lowers to, or nil when the views do not describe a
    /// contraction (mismatched extents, a mode nobody else has) or no BLAS
    /// layout fits (then the planner must choose another mode order or copy).
    public var lowered: Lowered? {
        // Extents must agree wherever a mode appears; size-1 modes do not address anything.
        var extent: [String: Extent] = [:]
        let views = [output, a] + (b.map { [$0] } ?? [])
        for view in views {
            for (mode, e) in zip(view.modes, view.extents) {
                if let seen = extent[mode], seen != e { return nil }
                extent[mode] = e
            }
        }
        func significant(_ v: TensorView) -> TensorView {
            var v = v
            while let k = v.extents.firstIndex(of: .fixed(1)) {
                v.modes.remove(at: k); v.extents.remove(at: k); v.strides.remove(at: k)
            }
            return v
        }
        let out = significant(output), a = significant(self.a)
        guard let bView = b else {
            // Copy: every mode of a must be in the output and vice versa.
            guard Set(a.modes) == Set(out.modes) else { return nil }
            let dims = out.modes.map { m in
                LoopDim(extent: extent[m]!, left: a.stride(of: m)!, right: .fixed(0), output: out.stride(of: m)!, reduces: false)
            }
            return .elementwise(ElementwiseStep(output: output, a: self.a, b: nil, dims: dims))
        }
        let b = significant(bView)
        // Every mode is used twice (or is a batch mode): a mode in one operand alone would be a trace.
        for m in a.modes where !b.modes.contains(m) && !out.modes.contains(m) { return nil }
        for m in b.modes where !a.modes.contains(m) && !out.modes.contains(m) { return nil }
        for m in out.modes where !a.modes.contains(m) && !b.modes.contains(m) { return nil }

        let summed = a.modes.filter { b.modes.contains($0) && !out.modes.contains($0) }
        if summed.isEmpty {
            let dims = out.modes.map { m in
                LoopDim(extent: extent[m]!, left: a.stride(of: m) ?? .fixed(0), right: b.stride(of: m) ?? .fixed(0),
                        output: out.stride(of: m)!, reduces: false)
            }
            return .elementwise(ElementwiseStep(output: output, a: self.a, b: bView, dims: dims))
        }
        let batch = out.modes.filter { a.modes.contains($0) && b.modes.contains($0) }
        let rowModes = out.modes.filter { a.modes.contains($0) && !b.modes.contains($0) }
        let columnModes = out.modes.filter { b.modes.contains($0) && !a.modes.contains($0) }

        // Merge adjacent modes whose strides nest in every view that has them.
        func merge(_ modes: [String], _ views: [TensorView]) -> [(extent: Extent, strides: [Extent])] {
            var dims: [(extent: Extent, strides: [Extent])] = []
            for m in modes {
                let e = extent[m]!
                let s = views.map { $0.stride(of: m)! }
                if let last = dims.last, zip(last.strides, s).allSatisfy({ ($0.1.isFixed || e.isFixed) && $0.0 == $0.1 * e }), last.extent.isFixed || e.isFixed {
                    dims[dims.count - 1] = (last.extent * e, s)
                } else {
                    dims.append((e, s))
                }
            }
            return dims
        }
        // Of several merged dims one goes to the GEMM (preferably one with unit
        // stride in some view, which BLAS needs), the others become loops.
        func split(_ dims: [(extent: Extent, strides: [Extent])]) -> (gemm: (extent: Extent, strides: [Extent])?, loops: [(extent: Extent, strides: [Extent])]) {
            guard !dims.isEmpty else { return (nil, []) }
            let k = dims.lastIndex { $0.strides.contains(.fixed(1)) } ?? dims.count - 1
            var loops = dims
            let chosen = loops.remove(at: k)
            return (chosen, loops)
        }
        let (mDim, mLoops) = split(merge(rowModes, [a, out]))
        let (nDim, nLoops) = split(merge(columnModes, [b, out]))
        let (kChosen, kLoops) = split(merge(summed, [a, b]))
        let kDim = kChosen!
        let bDims = merge(batch, [a, b, out])
        var loops: [LoopDim] = bDims.map { LoopDim(extent: $0.extent, left: $0.strides[0], right: $0.strides[1], output: $0.strides[2], reduces: false) }
        loops += mLoops.map { LoopDim(extent: $0.extent, left: $0.strides[0], right: .fixed(0), output: $0.strides[1], reduces: false) }
        loops += nLoops.map { LoopDim(extent: $0.extent, left: .fixed(0), right: $0.strides[0], output: $0.strides[1], reduces: false) }
        loops += kLoops.map { LoopDim(extent: $0.extent, left: $0.strides[0], right: $0.strides[1], output: .fixed(0), reduces: true) }
        let m = mDim?.extent ?? .fixed(1), n = nDim?.extent ?? .fixed(1), k = kDim.extent
        let one = Extent.fixed(1)

        // op(A) = [m, k] from a's strides: row-major when k is contiguous, transposed when m is.
        guard let (transA, lda) = Self.operandLayout(rows: mDim?.strides[0], columns: kDim.strides[0], rowCount: m, columnCount: k),
              let (transB, ldb) = Self.operandLayout(rows: kDim.strides[1], columns: nDim?.strides[0], rowCount: k, columnCount: n)
        else { return nil }
        let cRow = mDim?.strides[1], cColumn = nDim?.strides[1]
        if cColumn == nil || cColumn == one {
            let ldc = cRow ?? n
            guard Self.atLeast(ldc, n) else { return nil }
            return .gemm(GEMMStep(left: self.a, right: bView, output: output, transLeft: transA, transRight: transB,
                                  m: m, n: n, k: k, lda: lda, ldb: ldb, ldc: ldc, loops: loops))
        }
        if cRow == nil || cRow == one {
            // Only Cᵀ is row-major: Cᵀ = op(B)ᵀ·op(A)ᵀ.
            let ldc = cColumn!
            guard Self.atLeast(ldc, m) else { return nil }
            let swapped = loops.map { LoopDim(extent: $0.extent, left: $0.right, right: $0.left, output: $0.output, reduces: $0.reduces) }
            return .gemm(GEMMStep(left: bView, right: self.a, output: output, transLeft: !transB, transRight: !transA,
                                  m: n, n: m, k: k, lda: ldb, ldb: lda, ldc: ldc, loops: swapped))
        }
        return nil
    }

    /// BLAS view of an operand `[rows, columns]` given the strides of its two
    /// merged dims (nil: the dim has extent 1): (transposed, leading dimension).
    private static func operandLayout(rows: Extent?, columns: Extent?, rowCount: Extent, columnCount: Extent) -> (Bool, Extent)? {
        let one = Extent.fixed(1)
        if columns == nil || columns == one {
            let ld = rows ?? columnCount
            return atLeast(ld, columnCount) ? (false, ld) : nil
        }
        if rows == nil || rows == one {
            let ld = columns!
            return atLeast(ld, rowCount) ? (true, ld) : nil
        }
        return nil
    }

    /// `a ≥ max(1, b)` for every token count n ≥ 1 (both are linear in n; a
    /// program whose sizes grow with n does not run for n = 0).
    static func atLeast(_ a: Extent, _ b: Extent) -> Bool {
        a.isAtLeast(.fixed(1)) && a.isAtLeast(b)
    }
}

/// A GEMM step the panel kernels run: a product over an operand packed as
/// panels of `Kernels.panelWidth` columns (the planner's `PanelPacking`:
/// forward's last product and backward's product of dy with the same factor),
/// or a thin product whose wide operand they read in place (x·Aᵀ, dt·A, dtᵀ·x,
/// finishBackward's products with a tall gradient). Each runs as one kernel
/// call, not as a loop of narrow GEMMs or an OpenBLAS call that re-arranges
/// its operands first.
public enum PanelProduct: Hashable, Sendable {
    /// `C[m, W·panels] (+)= α·op(A)·B` (`Kernels.panelGemm`), B[p, W·q + j] at
    /// q·panelStride + p·kStride + j.
    case multiply(panels: Extent, panelStride: Extent, kStride: Extent)
    /// `C[i, r] (+)= α·Σ_j A[i, j]·B[r, j]` over j < W·panels (dt = dy·Bᵀ,
    /// `Kernels.panelDot`), A row-major, B[r, W·q + j] at q·panelStride +
    /// r·rankStride + j; `transposedOutput`: C is stored `[r, i]` and the
    /// GEMM's left operand is B.
    case dot(panels: Extent, transposedOutput: Bool, panelStride: Extent, rankStride: Extent)

    public var panels: Extent {
        switch self {
        case .multiply(let p, _, _), .dot(let p, _, _, _): return p
        }
    }

    /// B's panel stride and its k (multiply) or rank (dot) stride.
    public var strides: (panel: Extent, inner: Extent) {
        switch self {
        case .multiply(_, let p, let k): return (p, k)
        case .dot(_, _, let p, let r): return (p, r)
        }
    }

    /// Read from panels `prepare` packed (else B is read in place).
    public var isPacked: Bool {
        switch self {
        case .multiply(_, let p, let k): return k == .fixed(Kernels.panelWidth) && p != .fixed(Kernels.panelWidth)
        case .dot(_, _, let p, let r): return r == .fixed(Kernels.panelWidth) && p != .fixed(Kernels.panelWidth)
        }
    }

    /// The thin side a product in place may have: the few columns of a dot, the
    /// inner size or the rows of a multiply (what the panel kernels were measured on).
    public static let thinLimit = 64
}

extension GEMMStep {
    /// Which panel product this step is, if any (see `PanelProduct`).
    public var panelProduct: PanelProduct? {
        let width = Kernels.panelWidth
        let w = Extent.fixed(width)
        if loops.isEmpty { return inPlaceProduct }
        guard loops.count == 1, let loop = loops.first else { return nil }
        if !loop.reduces, loop.left == .fixed(0), !transRight, k.isFixed, n == w, ldb == w,
           loop.right == k * width, loop.output == w {
            return .multiply(panels: loop.extent, panelStride: k * width, kStride: w)
        }
        if loop.reduces, !transLeft, loop.left == w, transRight, ldb == w, k == w,
           n.isFixed, loop.right == n * width, loop.output == .fixed(0) {
            return .dot(panels: loop.extent, transposedOutput: false, panelStride: n * width, rankStride: w)
        }
        if loop.reduces, !transLeft, lda == w, k == w, m.isFixed, loop.left == m * width,
           transRight, loop.right == w, loop.output == .fixed(0) {
            return .dot(panels: loop.extent, transposedOutput: true, panelStride: m * width, rankStride: w)
        }
        return nil
    }

    /// A plain GEMM the panel kernels take with B in place: `op(A)·B` with B
    /// row-major and a multiple of W wide, thin in k or in m; or `A·Bᵀ` (both
    /// operands with the summed index contiguous, a multiple of W long) with
    /// few columns (or few rows: then the output is transposed for the kernel).
    private var inPlaceProduct: PanelProduct? {
        let width = Kernels.panelWidth, limit = PanelProduct.thinLimit
        func thin(_ e: Extent) -> Bool { e.isFixed && e.constant <= limit }
        if !transRight, n.isFixed, n.constant >= width, n.constant % width == 0, thin(k) || thin(m) {
            return .multiply(panels: .fixed(n.constant / width), panelStride: .fixed(width), kStride: ldb)
        }
        if !transLeft, transRight, k.isFixed, k.constant >= width, k.constant % width == 0 {
            let panels = Extent.fixed(k.constant / width)
            if thin(n) { return .dot(panels: panels, transposedOutput: false, panelStride: .fixed(width), rankStride: ldb) }
            if thin(m) { return .dot(panels: panels, transposedOutput: true, panelStride: .fixed(width), rankStride: lda) }
        }
        return nil
    }
}
