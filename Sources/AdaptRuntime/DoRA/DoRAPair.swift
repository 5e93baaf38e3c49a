/// DoRA's maths for one pair (DESIGN §5): W' = m ⊙ V / ‖V‖_row with V = W + s·B·A.
/// Shapes: W [out, in], A [r, in], B [out, r], m [out], x [n, in], y [n, out], all row-major.
/// The row norms never form V: ‖V_o‖² = ‖W_o‖² + 2s·B_o·(A·W_oᵀ) + s²·‖B_o·A‖², accumulated in
/// float64 (the cross terms cancel when B is small, so float32 sums would lose the norm's digits).
/// Backward treats ‖V‖ as a constant, as PEFT detaches it.
public enum DoRAPair {
    /// ‖W + s·B·A‖ per output row.
    public static func rowNorms(w: [Float], a: [Float], b: [Float], scale s: Float,
                                out: Int, in inDim: Int, rank r: Int) -> [Float] {
        let s = Double(s)
        var norms = [Float](repeating: 0, count: out)
        var aw = [Double](repeating: 0, count: r)   // A·W_oᵀ
        var ba = [Double](repeating: 0, count: inDim) // B_o·A
        for o in 0..<out {
            var ww = 0.0
            for i in 0..<inDim { let v = Double(w[o * inDim + i]); ww += v * v }
            for k in 0..<r {
                var acc = 0.0
                for i in 0..<inDim { acc += Double(a[k * inDim + i]) * Double(w[o * inDim + i]) }
                aw[k] = acc
            }
            for i in 0..<inDim { ba[i] = 0 }
            var cross = 0.0
            for k in 0..<r {
                let bk = Double(b[o * r + k])
                cross += bk * aw[k]
                for i in 0..<inDim { ba[i] += bk * Double(a[k * inDim + i]) }
            }
            var bb = 0.0
            for i in 0..<inDim { bb += ba[i] * ba[i] }
            norms[o] = Float((ww + 2 * s * cross + s * s * bb).squareRoot())
        }
        return norms
    }

    /// y holds x·Wᵀ on entry and DoRA's output (bias excluded) on return:
    /// y ← (m/‖V‖) ⊙ (y + s·x·Aᵀ·Bᵀ).
    public static func forward(x: [Float], y: inout [Float], a: [Float], b: [Float], magnitude m: [Float],
                               norms: [Float], scale s: Float, rows n: Int, out: Int, in inDim: Int, rank r: Int) {
        var t = [Double](repeating: 0, count: r)
        for row in 0..<n {
            for k in 0..<r {
                var acc = 0.0
                for i in 0..<inDim { acc += Double(x[row * inDim + i]) * Double(a[k * inDim + i]) }
                t[k] = acc
            }
            for o in 0..<out {
                var lora = 0.0
                for k in 0..<r { lora += t[k] * Double(b[o * r + k]) }
                let v = Double(y[row * out + o]) + Double(s) * lora
                y[row * out + o] = Float(Double(m[o]) / Double(norms[o]) * v)
            }
        }
    }

    public struct Gradients { public var dA: [Float]; public var dB: [Float]; public var dm: [Float]; public var dx: [Float] }

    /// Gradients of sum(y' ⊙ dy) with y' = c ⊙ (x·Vᵀ), c = m/‖V‖ held constant. `baseOutput` is x·Wᵀ.
    /// dx is the whole pair's (base path included): (c ⊙ dy)·V = (c ⊙ dy)·W + s·((c ⊙ dy)·B)·A.
    public static func backward(x: [Float], dy: [Float], baseOutput: [Float], w: [Float], a: [Float], b: [Float],
                                magnitude m: [Float], norms: [Float], scale s: Float,
                                rows n: Int, out: Int, in inDim: Int, rank r: Int) -> Gradients {
        let s = Double(s)
        var dA = [Double](repeating: 0, count: r * inDim), dB = [Double](repeating: 0, count: out * r)
        var dm = [Double](repeating: 0, count: out), dx = [Double](repeating: 0, count: n * inDim)
        var t = [Double](repeating: 0, count: r), gb = [Double](repeating: 0, count: r)
        for row in 0..<n {
            for k in 0..<r {
                var acc = 0.0
                for i in 0..<inDim { acc += Double(x[row * inDim + i]) * Double(a[k * inDim + i]) }
                t[k] = acc; gb[k] = 0
            }
            for o in 0..<out {
                var lora = 0.0
                for k in 0..<r { lora += t[k] * Double(b[o * r + k]) }
                let v = Double(baseOutput[row * out + o]) + s * lora   // (x·Vᵀ)[row, o]
                let d = Double(dy[row * out + o])
                let nrm = Double(norms[o])
                dm[o] += v * d / nrm
                let g = Double(m[o]) / nrm * d
                for k in 0..<r { dB[o * r + k] += s * g * t[k]; gb[k] += g * Double(b[o * r + k]) }
                for i in 0..<inDim { dx[row * inDim + i] += g * Double(w[o * inDim + i]) }
            }
            for k in 0..<r {
                for i in 0..<inDim {
                    dA[k * inDim + i] += s * gb[k] * Double(x[row * inDim + i])
                    dx[row * inDim + i] += s * gb[k] * Double(a[k * inDim + i])
                }
            }
        }
        return Gradients(dA: dA.map(Float.init), dB: dB.map(Float.init), dm: dm.map(Float.init), dx: dx.map(Float.init))
    }

    /// W' = (m/‖V‖) ⊙ (W + s·B·A), row by row.
    public static func merge(w: [Float], a: [Float], b: [Float], magnitude m: [Float], norms: [Float],
                             scale s: Float, out: Int, in inDim: Int, rank r: Int) -> [Float] {
        var merged = w
        for o in 0..<out {
            let c = Double(m[o]) / Double(norms[o])
            for i in 0..<inDim {
                var ba = 0.0
                for k in 0..<r { ba += Double(b[o * r + k]) * Double(a[k * inDim + i]) }
                merged[o * inDim + i] = Float(c * (Double(w[o * inDim + i]) + Double(s) * ba))
            }
        }
        return merged
    }

    /// W from W': W = W'·‖V‖/m − s·B·A, where ‖V‖ are the norms prepared from the original W.
    public static func unmerge(merged: [Float], a: [Float], b: [Float], magnitude m: [Float], norms: [Float],
                               scale s: Float, out: Int, in inDim: Int, rank r: Int) -> [Float] {
        var w = merged
        for o in 0..<out {
            let c = Double(norms[o]) / Double(m[o])
            for i in 0..<inDim {
                var ba = 0.0
                for k in 0..<r { ba += Double(b[o * r + k]) * Double(a[k * inDim + i]) }
                w[o * inDim + i] = Float(c * Double(merged[o * inDim + i]) - Double(s) * ba)
            }
        }
        return w
    }
}
