import AdaptRuntime

/// Backward in two phases, for two threads (or more) to share it evenly.
///
/// Backward's steps are of two kinds. Most map token rows to token rows
/// (recomputing `t = x·Aᵀ`, `dt = dy·B`, `dx += dt·A`): each row's result
/// needs that row alone, so blocks of rows can run all of them one after the
/// other with no wait in between (`Program.rowLocalStages`). The rest sum over
/// the rows into a parameter gradient (`dB += dyᵀ·t`, `dA += dtᵀ·x`) and need
/// every row of what the first kind made. Run as stages, a layer of four
/// modules had five equal products in a stage for two threads (three on one,
/// two on the other) and a wait after each of four stages. Here the row-local
/// steps run first, on row blocks; then each sum over rows is cut along its
/// output into pieces of about equal work (`pieces`), so the sums spread
/// evenly too. Measured on tt-xlayer (`adaptc-bench backward`, 24 × q/k/v/o,
/// n = 64, 2 threads, five alternating runs against the stages): the layers'
/// backward 2.04–2.20× the forward against 2.25–2.43×, forward+backward
/// 3.21–3.31× against 3.38–3.60×.
///
/// Both cuts are fixed by the shapes (`RowBlocks`, `pieces`), never by the
/// thread count, so results stay bitwise identical for any `threads`.
enum RowPhases {
    /// `steps` (in an order that respects their dependences) as a program:
    /// the row-local steps that depend on no sum over rows first, then the rest.
    static func program(_ steps: [Contraction]) -> Program {
        var rowLocal: [Contraction] = [], rest: [Contraction] = []
        for c in steps {
            // Moving c ahead of the steps already left for later must not reorder any two that touch one buffer.
            // (Lowering takes the longest, so it comes last.)
            if c.hasRowLocalViews && !rest.contains(where: { NetworkLowering.conflicts($0, c) }) && c.isRowLocal(lowered: c.lowered) {
                rowLocal.append(c)
            } else {
                rest.append(c)
            }
        }
        if rowLocal.isEmpty { return Program(NetworkLowering.stages(rest)) }
        // Pieces of about equal work: the smallest sum that is cut goes in two, the others in proportion.
        let work = rest.map { cut($0) == nil ? 0 : multiplyAdds($0) }
        let unit = Swift.max((work.filter { $0 > 0 }.min() ?? 0) / 2, 1)
        let cutRest = zip(rest, work).flatMap { c, w in
            w == 0 ? [c] : pieces(c, count: Swift.min(Int((Double(w) / Double(unit)).rounded()), maximumPieces))
        }
        let phased = Program(rowLocal: NetworkLowering.stages(rowLocal), then: NetworkLowering.stages(cutRest))
        PlanVerifier.assertValid(phased, after: "RowPhases")
        return phased
    }

    /// A sum's multiply-adds at 64 tokens, from its modes (lowering it takes much longer):
    /// the product of every mode's extent, each mode once.
    static func multiplyAdds(_ c: Contraction) -> Int {
        var extent: [String: Int] = [:]
        for view in [c.output, c.a] + (c.b.map { [$0] } ?? []) {
            for (mode, e) in zip(view.modes, view.extents) { extent[mode] = e.value(tokens: 64) }
        }
        return extent.values.reduce(1, *)
    }

    /// Outputs with fewer elements stay whole: their pieces would not pay for a task each.
    static let halvingLimit = 2048
    /// At most this many pieces of one sum.
    static let maximumPieces = 16

    /// The mode to cut a sum over token rows along, if it is one worth cutting:
    /// the output's outermost mode that the largest operand (dy or x, the one
    /// read from memory) also has, so the pieces read disjoint parts of it.
    static func cut(_ c: Contraction) -> String? {
        let operands = [c.a] + (c.b.map { [$0] } ?? [])
        guard c.output.storage.isOwned, c.output.count.isFixed, c.output.count.constant >= halvingLimit,
              operands.contains(where: { $0.extents.contains(.tokens) }),
              let largest = operands.max(by: { $0.count.value(tokens: 64) < $1.count.value(tokens: 64) })
        else { return nil }
        return c.output.modes.first { m in
            largest.modes.contains(m) && c.output.extent(of: m)!.isFixed && c.output.extent(of: m)!.constant >= 2
        }
    }

    /// A sum over token rows as `count` contractions (at most the cut mode's
    /// extent), each writing a consecutive part of the output along `cut`;
    /// anything else as it is.
    static func pieces(_ c: Contraction, count: Int) -> [Contraction] {
        guard count >= 2, let mode = cut(c) else { return [c] }
        let extent = c.output.extent(of: mode)!.constant, count = Swift.min(count, extent)
        func piece(_ view: TensorView, from start: Int, count: Int) -> TensorView {
            guard let k = view.modes.firstIndex(of: mode) else { return view }
            var v = view
            v.offset = v.offset + v.strides[k] * start
            v.extents[k] = .fixed(count)
            return v
        }
        let bounds = (0...count).map { extent * $0 / count }
        let pieces = zip(bounds, bounds.dropFirst()).map { start, end in
            Contraction(piece(c.output, from: start, count: end - start), piece(c.a, from: start, count: end - start),
                        c.b.map { piece($0, from: start, count: end - start) }, alpha: c.alpha, accumulate: c.accumulate)
        }
        // Pieces of one length lower alike: one of each length is tried.
        var tried: [Int: Bool] = [:]
        let lower = pieces.allSatisfy { piece in
            let length = piece.output.extent(of: mode)!.constant
            if let known = tried[length] { return known }
            tried[length] = piece.lowered != nil
            return tried[length]!
        }
        return lower ? pieces : [c]
    }
}
