/// Forward maps each token row on its own, so a forward program
/// (`Program.mapsRowsIndependently`) can run on blocks of rows side by side:
/// each block runs the whole program on its rows, in its own slice of the
/// workspace. One fork per call instead of one per stage, and no stage waits
/// on a serial step (the input-side `x·Aᵀ` of a fused layer forward).
///
/// Blocks are `FixedBlocks` of the row count — chosen from the shape, never
/// from the thread count — and a single thread runs the same blocks in order,
/// so results are bitwise identical for any `threads`.
public enum RowBlocks {
    /// Rows per block are a multiple of this: each block's products repack
    /// their weight operand (OpenBLAS does, per call), which at least this many
    /// rows amortise.
    public static let rowMultiple = 32

    /// Calls `body(rows, first, workspace, threads)` for each block of the `n`
    /// rows (`rowWork`: flops per row), handing it `rows` rows starting at row
    /// `first` and a workspace of `perRow·rows + fixed` floats of its own.
    public static func run(rows n: Int, rowWork: Int, workspacePerRow: Int, workspaceFixed: Int,
                           storage: AdapterStorage, threads: Int,
                           _ body: (_ rows: Int, _ first: Int, _ workspace: UnsafeMutablePointer<Float>, _ threads: Int) -> Void) {
        let blocks = FixedBlocks(extent: n, unitWork: rowWork, panel: rowMultiple)
        if blocks.count <= 1 {
            body(n, 0, storage.workspace(atLeast: workspacePerRow * n + workspaceFixed), threads)
            return
        }
        let step = workspacePerRow * blocks.length + workspaceFixed
        let workspace = storage.workspace(atLeast: step * blocks.count)
        Parallel.forEach(blocks.count, threads: threads) { range in
            for b in range {
                let rows = blocks[b]
                body(rows.count, rows.lowerBound, workspace + b * step, 1)
            }
        }
    }
}

extension RowBlocks {
    /// Calls `body(rows, first, threads)` for each block of the `n` rows
    /// (`rowWork`: flops per row), side by side: the row-local stages of a
    /// program (`Program.rowLocalStages`), which keep their intermediates
    /// whole, each block writing its own rows of them. The same `FixedBlocks`
    /// as `run`, so results do not depend on `threads`.
    public static func each(rows n: Int, rowWork: Int, threads: Int,
                            _ body: (_ rows: Int, _ first: Int, _ threads: Int) -> Void) {
        let blocks = FixedBlocks(extent: n, unitWork: rowWork, panel: rowMultiple)
        if blocks.count <= 1 {
            body(n, 0, threads)
            return
        }
        Parallel.forEach(blocks.count, threads: threads) { range in
            for b in range {
                let rows = blocks[b]
                body(rows.count, rows.lowerBound, 1)
            }
        }
    }
}
