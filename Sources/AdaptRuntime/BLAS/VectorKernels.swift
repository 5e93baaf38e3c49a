/// The kernels of the plan IR's steps beyond multiply-add (`PlanStep`): the
/// one arithmetic the interpreter and generated code both call, with sizes
/// and strides as `LineGeometry` gives them (a view's `row` mode and its
/// other mode; a missing mode is extent 1, stride 0).
extension Kernels {
    /// `y (=|+=) op(x)` element by element (`MapStep`), columns outer, rows inner.
    public static func map(_ op: MapOp, rows: Int, columns: Int, x: UnsafePointer<Float>, xRow: Int, xColumn: Int,
                           y: UnsafeMutablePointer<Float>, yRow: Int, yColumn: Int, accumulate: Bool) {
        for c in 0..<columns {
            for r in 0..<rows {
                let v = op.apply(x[r * xRow + c * xColumn])
                let target = y + (r * yRow + c * yColumn)
                target.pointee = accumulate ? target.pointee + v : v
            }
        }
    }

    /// `y[r] = ‖x[r, ·]‖₂` (`RowNormStep`): each row's squares summed in float64
    /// in column order, the root taken in float64 and rounded once.
    public static func rowNorm(rows: Int, columns: Int, x: UnsafePointer<Float>, xRow: Int, xColumn: Int,
                               y: UnsafeMutablePointer<Float>, yRow: Int) {
        for r in 0..<rows {
            var sum = 0.0
            for c in 0..<columns {
                let v = Double(x[r * xRow + c * xColumn])
                sum += v * v
            }
            y[r * yRow] = Float(sum.squareRoot())
        }
    }

    /// `out[r, c] (=|+=) α·(a[r, c]·f_r)`, `f_r = u_r / w_r` in Float (a nil
    /// vector is 1; α = 1 is not multiplied) (`RowScaleStep`). `out` may be `a`
    /// (an in-place rescale: each element is read before it is written). Split
    /// over columns into `FixedBlocks` from the shape alone; no sums, so any
    /// `threads` gives the same bits.
    public static func rowScale(rows: Int, columns: Int, alpha: Float, a: UnsafePointer<Float>, aRow: Int, aColumn: Int,
                                scale u: UnsafePointer<Float>?, scaleStride: Int, divisor w: UnsafePointer<Float>?, divisorStride: Int,
                                out: UnsafeMutablePointer<Float>, outRow: Int, outColumn: Int, accumulate: Bool, threads: Int) {
        FixedBlocks(extent: columns, unitWork: 2 * rows).forEach(threads: threads) { block in
            for c in block {
                for r in 0..<rows {
                    let f: Float
                    switch (u, w) {
                    case let (u?, w?): f = u[r * scaleStride] / w[r * divisorStride]
                    case let (u?, nil): f = u[r * scaleStride]
                    case let (nil, w?): f = 1 / w[r * divisorStride]
                    case (nil, nil): f = 1
                    }
                    var v = a[r * aRow + c * aColumn] * f
                    if alpha != 1 { v = alpha * v }
                    let target = out + (r * outRow + c * outColumn)
                    target.pointee = accumulate ? target.pointee + v : v
                }
            }
        }
    }
}
