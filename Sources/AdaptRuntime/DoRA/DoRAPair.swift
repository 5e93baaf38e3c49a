/// DoRA's own steps for one pair (DESIGN §5): W' = m ⊙ V / ‖V‖_row with V = W + s·B·A.
/// The LoRA parts (x·Aᵀ·Bᵀ, s·B·A, their VJP) are the plan's programs, run by
/// the interpreter or the generated kernels; these are what DoRA adds, the one
/// implementation both call. Shapes: W [out, in], A [r, in], B [out, r],
/// m [out], token buffers [n, out], all row-major.
///
/// Threads: every loop is cut into `FixedBlocks` from the shape alone and no
/// block shares a sum with another (output rows for the norms and merge, token
/// rows for the rescaling, output columns for the magnitude gradient, each
/// summing its token rows in order), so results are bitwise identical for any
/// `threads` (`AdapterStorage`'s contract).
public enum DoRAPair {
    /// `norms[o] = ‖W_o + s·B_o·A‖` without forming V:
    /// ‖V_o‖² = ‖W_o‖² + 2s·B_o·(A·W_oᵀ) + s²·B_o·G·B_oᵀ with the Gram matrix
    /// G = A·Aᵀ `[r, r]` (= ‖B_o·A‖²), all in float64 (the terms cancel where V's
    /// row is much shorter than W's, so float32 sums would lose the norm's digits).
    /// A·W_oᵀ runs over Aᵀ `[in, r]` with the r sums side by side (each still
    /// summed over `in` in order), which the compiler vectorises: about
    /// `2·out·in·(r + 1)` flops, plus `r²·in` once for G.
    /// - Parameters:
    ///   - w: the base weight W `[out, in]`.
    ///   - a: A `[r, in]`.
    ///   - b: B `[out, r]`.
    ///   - s: the pair's scale.
    ///   - out: rows of W.
    ///   - inDim: columns of W.
    ///   - r: the rank.
    ///   - norms: receives `out` norms.
    ///   - threads: TBB threads (0: TBB's default).
    public static func rowNorms(w: UnsafePointer<Float>, a: UnsafePointer<Float>, b: UnsafePointer<Float>, scale s: Float,
                                out: Int, in inDim: Int, rank r: Int, into norms: UnsafeMutablePointer<Float>, threads: Int) {
        let s = Double(s)
        let at = UnsafeMutablePointer<Double>.allocate(capacity: max(inDim * r, 1))   // Aᵀ
        let gram = UnsafeMutablePointer<Double>.allocate(capacity: max(r * r, 1))     // A·Aᵀ
        defer { at.deallocate(); gram.deallocate() }
        for k in 0..<r { for i in 0..<inDim { at[i * r + k] = Double(a[k * inDim + i]) } }
        gram.initialize(repeating: 0, count: r * r)
        for i in 0..<inDim {
            let row = at + i * r
            for k in 0..<r { for l in 0..<r { gram[k * r + l] += row[k] * row[l] } }
        }
        let blocks = FixedBlocks(extent: out, unitWork: 2 * inDim * (r + 1))
        Parallel.forEach(blocks.count, threads: threads) { range in
            let aw = UnsafeMutablePointer<Double>.allocate(capacity: max(r, 1))   // A·W_oᵀ
            defer { aw.deallocate() }
            for block in range {
                for o in blocks[block] {
                    let wo = w + o * inDim, bo = b + o * r
                    aw.initialize(repeating: 0, count: r)
                    var ww = 0.0
                    for i in 0..<inDim {
                        let v = Double(wo[i]), column = at + i * r
                        ww += v * v
                        for k in 0..<r { aw[k] += column[k] * v }
                    }
                    var cross = 0.0, bb = 0.0
                    for k in 0..<r {
                        let bk = Double(bo[k])
                        cross += bk * aw[k]
                        var gb = 0.0
                        for l in 0..<r { gb += gram[k * r + l] * Double(bo[l]) }
                        bb += bk * gb
                    }
                    norms[o] = Float((ww + 2 * s * cross + s * s * bb).squareRoot())
                }
            }
        }
    }

    /// The first row whose norm is zero or not finite (DoRA divides by it), or nil.
    public static func firstBadRow(_ norms: UnsafeBufferPointer<Float>) -> Int? {
        norms.firstIndex { !($0.isFinite && $0 > 0) }
    }

    /// Forward's last step: `y` `[n, out]` holds `x·Vᵀ = x·Wᵀ + s·x·Aᵀ·Bᵀ` on entry
    /// and DoRA's output `(m/‖V‖) ⊙ x·Vᵀ` (bias excluded) on return.
    /// - Parameters:
    ///   - y: the token rows, rescaled in place.
    ///   - n: token rows.
    ///   - m: the magnitude vector `[out]`.
    ///   - norms: `‖V‖` per row `[out]` (`rowNorms`).
    ///   - out: the row width of `y`.
    ///   - threads: TBB threads (0: TBB's default).
    public static func rescale(_ y: UnsafeMutablePointer<Float>, rows n: Int, magnitude m: UnsafePointer<Float>,
                               norms: UnsafePointer<Float>, out: Int, threads: Int) {
        // The plan IR's row rescale `y ← y ⊙_o (m/‖V‖)` (`RowScaleStep`) on y's
        // columns o (stride 1) over its n rows (stride out), in place.
        Kernels.rowScale(rows: out, columns: n, alpha: 1, a: y, aRow: 1, aColumn: out, scale: m, scaleStride: 1,
                         divisor: norms, divisorStride: 1, out: y, outRow: 1, outColumn: out, accumulate: false, threads: threads)
    }

    /// Backward's DoRA step, the norm held constant as PEFT detaches it:
    /// `dm_o += Σ_rows (x·Vᵀ)_o·dy_o / ‖V_o‖` (float64 sums), then
    /// `dy ← (m/‖V‖) ⊙ dy` (`rescale`), the gradient with respect to `x·Vᵀ`, which the
    /// LoRA VJP (A, B, the adapter's part of dx) and the caller's base backward
    /// (`dx += dy·W`) then take on.
    /// - Parameters:
    ///   - v: `x·Vᵀ` `[n, out]` (the base output plus the LoRA output).
    ///   - dy: the gradient with respect to DoRA's output `[n, out]`, rewritten in place.
    ///   - m: the magnitude vector `[out]`.
    ///   - norms: `‖V‖` per row `[out]`.
    ///   - dm: the magnitude's gradient `[out]`, accumulated.
    ///   - n: token rows.
    ///   - out: the row width.
    ///   - threads: TBB threads (0: TBB's default).
    public static func backward(xV v: UnsafePointer<Float>, dy: UnsafeMutablePointer<Float>, magnitude m: UnsafePointer<Float>,
                                norms: UnsafePointer<Float>, magnitudeGradient dm: UnsafeMutablePointer<Float>,
                                rows n: Int, out: Int, threads: Int) {
        FixedBlocks(extent: out, unitWork: 3 * n).forEach(threads: threads) { columns in
            var sums = [Double](repeating: 0, count: columns.count)
            for row in 0..<n {
                for (j, o) in columns.enumerated() { sums[j] += Double(v[row * out + o]) * Double(dy[row * out + o]) }
            }
            for (j, o) in columns.enumerated() { dm[o] += Float(sums[j] / Double(norms[o])) }
        }
        // dy read above, rescaled here: the same row rescale as forward's.
        rescale(dy, rows: n, magnitude: m, norms: norms, out: out, threads: threads)
    }

    /// Materialize and merge: `delta` holds ΔW = s·B·A on entry and `W' − W` on
    /// return, `W'_o = (m_o/‖V_o‖)·(W_o + ΔW_o)`, in float64 per element.
    /// - Parameters:
    ///   - delta: `[out, in]`, rewritten in place.
    ///   - weight: the base W `[out, in]`.
    ///   - m: the magnitude vector `[out]`.
    ///   - norms: `‖V‖` per row, from this W.
    ///   - out: rows.
    ///   - inDim: columns.
    ///   - threads: TBB threads (0: TBB's default).
    public static func mergedChange(_ delta: UnsafeMutablePointer<Float>, weight: UnsafePointer<Float>,
                                    magnitude m: UnsafePointer<Float>, norms: UnsafePointer<Float>,
                                    out: Int, in inDim: Int, threads: Int) {
        FixedBlocks(extent: out, unitWork: 4 * inDim).forEach(threads: threads) { rows in
            for o in rows {
                let c = Double(m[o]) / Double(norms[o])
                for i in o * inDim..<(o + 1) * inDim {
                    let w = Double(weight[i])
                    delta[i] = Float(c * (w + Double(delta[i])) - w)
                }
            }
        }
    }

    /// Unmerge: `weight` holds W' on entry and `W = W'·‖V‖/m − ΔW` on return,
    /// with the norms prepared from the original W (W' alone does not determine them).
    /// - Parameters:
    ///   - weight: `[out, in]`, rewritten in place.
    ///   - delta: ΔW = s·B·A `[out, in]`.
    ///   - m: the magnitude vector `[out]`.
    ///   - norms: `‖V‖` per row, from the original W.
    ///   - out: rows.
    ///   - inDim: columns.
    ///   - threads: TBB threads (0: TBB's default).
    public static func unmerge(_ weight: UnsafeMutablePointer<Float>, delta: UnsafePointer<Float>,
                               magnitude m: UnsafePointer<Float>, norms: UnsafePointer<Float>,
                               out: Int, in inDim: Int, threads: Int) {
        FixedBlocks(extent: out, unitWork: 3 * inDim).forEach(threads: threads) { rows in
            for o in rows {
                let c = Double(norms[o]) / Double(m[o])
                for i in o * inDim..<(o + 1) * inDim { weight[i] = Float(c * Double(weight[i]) - Double(delta[i])) }
            }
        }
    }
}
