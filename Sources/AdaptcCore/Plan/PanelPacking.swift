import AdaptRuntime

/// Plan pass, after a group's programs are derived (every structure, lora
/// included). The last product of forward, `y += t·Bᵀ`, has a small inner size
/// (a rank) and a wide output, and B does not change between weight updates
/// (a prepared intermediate or a stored factor). Its time goes into streaming
/// y and into re-arranging B for the kernel on every call. So `prepare` gets
/// one more stage that copies each such B into panels of `Kernels.panelWidth`
/// columns, `[panel, rank, lane]`, the order the panel kernel reads, and the
/// forward step reads the copy: the output's column mode is split into
/// (panel, lane) so the step lowers to a GEMM looped over panels, which
/// `GEMMStep.panelProduct` recognises and runs as one `Kernels.panelGemm`.
///
/// Backward's `dt = dy·B` reads the copy too (`Kernels.panelDot`). B's own
/// gradient, materialize and finishBackward keep B's layout: the copies have
/// no gradient (accumulating one in panel layout was tried and was no faster;
/// both passes over dy are bound by reading it). A B that several steps read
/// (a pair's forward and its layer's fused forward) is copied once.
enum PanelPacking {
    /// Inner sizes the panel kernel takes (measured faster than OpenBLAS at 8, 16 and 64).
    static let ranks = 2...64

    static func apply(to group: inout GroupPlan, prepared: inout Int) {
        let start = prepared
        var packing = Packing(next: prepared)
        for i in group.pairs.indices {
            group.pairs[i].forward = packing.rewrite(group.pairs[i].forward)
        }
        for i in group.layerForwards.indices {
            group.layerForwards[i].program = packing.rewrite(group.layerForwards[i].program)
        }
        guard !packing.copies.isEmpty else { return }
        for i in group.pairs.indices {
            group.pairs[i].backward = packing.rewriteBackward(group.pairs[i].backward)
        }
        for i in group.layerBackwards.indices {
            group.layerBackwards[i].program = packing.rewriteBackward(group.layerBackwards[i].program)
        }
        group.prepare = Program(group.prepare.stages + [packing.copies])
        prepared = packing.next
        // A group with tasks: a copy of a B that moves with the task is one copy
        // per task, the region of copies repeated task after task.
        if !packing.moving.isEmpty && group.tasks.count > 1 {
            let region = packing.next - start, moving = packing.moving
            let moves = { (view: TensorView) -> Int? in
                view.storage == .prepared && view.offset.isFixed && moving.contains(view.offset.constant) ? region : nil
            }
            group = group.indexingTasks(moves)
            prepared += (group.tasks.count - 1) * region
        }
        for program in [group.prepare] + group.pairs.flatMap({ [$0.forward, $0.backward] }) + (group.layerForwards + group.layerBackwards).map(\.program) {
            PlanVerifier.assertValid(program, after: "PanelPacking")
        }
    }

    private struct Packing {
        /// The next free offset in prepared state.
        var next: Int
        var copies: [Contraction] = []
        /// Offsets of copies whose source moves with the task (`taskStride`).
        var moving: Set<Int> = []
        /// A packed copy: the view, its source's row stride, and whether the
        /// source is stored [out, rank] (else [rank, out]).
        struct Copy {
            var packed: TensorView
            var ld: Int
            var outMajor: Bool
        }
        /// Packed copies already made, by where their source is.
        var made: [String: [Copy]] = [:]

        /// The copy of the B at `source` stored with row stride `ld`, [out, rank]
        /// when `outMajor`, with `rank` ranks and `panels` panels, if made.
        func copy(of source: TensorView, ld: Int, outMajor: Bool, rank: Extent, panels: Int) -> Copy? {
            made["\(source.storage)@\(source.offset.constant)"]?.first {
                $0.ld == ld && $0.outMajor == outMajor
                    && $0.packed.extents == [.fixed(panels), rank, .fixed(Kernels.panelWidth)]
            }
        }

        func rewriteBackward(_ program: Program) -> Program {
            var rewritten = program
            rewritten.stages = program.stages.map { stage in stage.map { rewriteBackward($0) } }
            return rewritten
        }

        /// `dt = α·dy·B` with B packed for forward reads the packed copy (the panel
        /// dot kernel, `PanelProduct.dot`); B's own gradient keeps B's layout.
        func rewriteBackward(_ c: Contraction) -> Contraction {
            let width = Kernels.panelWidth
            guard c.output.storage == .workspace, case .gemm(let g)? = c.lowered, g.loops.isEmpty,
                  g.k.isFixed, g.m.isFixed != g.n.isFixed else { return c }
            // dy [rows, out] and B [out, rank] on whichever side BLAS put them;
            // `outMajor`: how B's operand is stored here.
            let dy: TensorView, dyLd: Extent, factor: TensorView, factorLd: Extent, outMajor: Bool, rows: Extent, swapped: Bool
            if g.left.storage == .outputGradient, !g.transLeft, g.n.isFixed {
                (dy, dyLd, factor, factorLd, outMajor, rows, swapped) = (g.left, g.lda, g.right, g.ldb, !g.transRight, g.m, false)
            } else if g.right.storage == .outputGradient, g.transRight, g.m.isFixed {
                (dy, dyLd, factor, factorLd, outMajor, rows, swapped) = (g.right, g.ldb, g.left, g.lda, g.transLeft, g.n, true)
            } else {
                return c
            }
            guard factorLd.isFixed, g.k.constant % width == 0,
                  let made = copy(of: factor, ld: factorLd.constant, outMajor: outMajor, rank: swapped ? g.m : g.n,
                                  panels: g.k.constant / width)
            else { return c }
            let rank = swapped ? g.m : g.n
            let output = TensorView(g.output.name, in: g.output.storage, slot: g.output.slot, offset: g.output.offset,
                                    modes: ["row", "rank"], extents: [rows, rank],
                                    strides: swapped ? [.fixed(1), g.ldc] : [g.ldc, .fixed(1)])
            let gradient = TensorView(dy.name, in: dy.storage, slot: dy.slot, offset: dy.offset, modes: ["row", "panel", "lane"],
                                      extents: [rows, made.packed.extents[0], .fixed(width)], strides: [dyLd, .fixed(width), .fixed(1)])
            return Contraction(output, gradient, made.packed, alpha: c.alpha, accumulate: c.accumulate)
        }

        mutating func rewrite(_ program: Program) -> Program {
            var rewritten = program
            rewritten.stages = program.stages.map { stage in stage.map { rewrite($0) } }
            return rewritten
        }

        mutating func rewrite(_ c: Contraction) -> Contraction {
            let width = Kernels.panelWidth
            guard c.output.storage == .output, case .gemm(let g)? = c.lowered, g.loops.isEmpty,
                  g.right.storage == .prepared || g.right.storage == .parameters,
                  g.left.storage == .workspace || g.left.storage == .input, !g.m.isFixed,
                  g.k.isFixed, g.n.isFixed, g.ldb.isFixed, PanelPacking.ranks.contains(g.k.constant),
                  g.n.constant % width == 0
            else { return c }
            let (k, panels) = (g.k.constant, g.n.constant / width)
            let packed = panelCopy(of: g, k: k, panels: panels)
            let rows = TensorView(g.left.name, in: g.left.storage, slot: g.left.slot, offset: g.left.offset,
                                  modes: ["row", "rank"], extents: [g.m, g.k],
                                  strides: g.transLeft ? [.fixed(1), g.lda] : [g.lda, .fixed(1)])
            let output = TensorView(g.output.name, in: g.output.storage, slot: g.output.slot, offset: g.output.offset,
                                    modes: ["row", "panel", "lane"], extents: [g.m, .fixed(panels), .fixed(width)],
                                    strides: [g.ldc, .fixed(width), .fixed(1)])
            return Contraction(output, rows, packed, alpha: c.alpha, accumulate: c.accumulate)
        }

        /// The packed copy of the step's op(B) `[k, n]`, made (and its copy step
        /// added to prepare) on first use.
        private mutating func panelCopy(of g: GEMMStep, k: Int, panels: Int) -> TensorView {
            let width = Kernels.panelWidth, ldb = g.ldb.constant
            if let made = copy(of: g.right, ld: ldb, outMajor: g.transRight, rank: .fixed(k), panels: panels) { return made.packed }
            let packed = TensorView("\(g.right.name).panels", in: .prepared, offset: .fixed(next),
                                    modes: ["panel", "rank", "lane"], extents: [.fixed(panels), .fixed(k), .fixed(width)])
            next += panels * k * width
            // op(B)[p, j] is B[j, p] (stored [n, k]) or B[p, j] (stored [k, n]); j = panel·W + lane.
            let source = g.transRight
                ? TensorView(g.right.name, in: g.right.storage, offset: g.right.offset, modes: ["panel", "lane", "rank"],
                             extents: [.fixed(panels), .fixed(width), .fixed(k)], strides: [.fixed(width * ldb), .fixed(ldb), .fixed(1)])
                : TensorView(g.right.name, in: g.right.storage, offset: g.right.offset, modes: ["rank", "panel", "lane"],
                             extents: [.fixed(k), .fixed(panels), .fixed(width)], strides: [.fixed(ldb), .fixed(width), .fixed(1)])
            var moved = source
            moved.taskStride = g.right.taskStride
            if g.right.taskStride != 0 { moving.insert(next - panels * k * width) }
            copies.append(Contraction(packed, moved, nil, accumulate: false))
            made["\(g.right.storage)@\(g.right.offset.constant)", default: []].append(Copy(packed: packed, ld: ldb, outMajor: g.transRight))
            return packed
        }
    }
}
