/// DoRA (Liu et al. 2024; PEFT `use_dora`) in float64 naive loops over the
/// definition, nothing of AdaptRuntime: V = W + s·B·A formed explicitly,
/// W' = m ⊙ V / ‖V‖_row, the norm held constant in backward as PEFT detaches
/// it. Shapes: W [out, in], A [r, in], B [out, r], m [out], x [n, in],
/// y [n, out], row-major. The tests check it against PEFT's own fixture and
/// the runtime (interpreter, generated code) against it.
public struct DoRAReference {
    public let w: [Float], a: [Float], b: [Float], m: [Float]
    public let scale: Double
    public let out: Int, inDim: Int, rank: Int

    public init(w: [Float], a: [Float], b: [Float], m: [Float], scale: Double, out: Int, in inDim: Int, rank: Int) {
        (self.w, self.a, self.b, self.m, self.scale, self.out, self.inDim, self.rank) = (w, a, b, m, scale, out, inDim, rank)
    }

    /// V = W + s·B·A.
    public var v: [Double] {
        (0..<(out * inDim)).map { k in
            let (o, i) = (k / inDim, k % inDim)
            return Double(w[k]) + scale * (0..<rank).reduce(0.0) { $0 + Double(b[o * rank + $1]) * Double(a[$1 * inDim + i]) }
        }
    }

    /// ‖V_o‖ per row.
    public var norms: [Double] {
        let v = v
        return (0..<out).map { o in (0..<inDim).reduce(0.0) { $0 + v[o * inDim + $1] * v[o * inDim + $1] }.squareRoot() }
    }

    /// W' = (m/‖V‖) ⊙ V.
    public var merged: [Double] {
        let v = v, norms = norms
        return (0..<(out * inDim)).map { k in Double(m[k / inDim]) / norms[k / inDim] * v[k] }
    }

    /// x·Wᵀ `[n, out]`.
    public func baseOutput(_ x: [Float], rows n: Int) -> [Double] {
        product(x, w.map(Double.init), rows: n)
    }

    /// x·W'ᵀ `[n, out]`, DoRA's output.
    public func output(_ x: [Float], rows n: Int) -> [Double] { product(x, merged, rows: n) }

    /// Gradients of Σ y'⊙dy, y' = c ⊙ (x·Vᵀ), c = m/‖V‖ held constant; dx of the whole pair (base path included).
    public func gradients(x: [Float], dy: [Float], rows n: Int) -> (dA: [Double], dB: [Double], dm: [Double], dx: [Double]) {
        let v = v, norms = norms, xv = product(x, v, rows: n)
        var dA = [Double](repeating: 0, count: rank * inDim), dB = [Double](repeating: 0, count: out * rank)
        var dm = [Double](repeating: 0, count: out), dx = [Double](repeating: 0, count: n * inDim)
        // g = c ⊙ dy is the gradient with respect to x·Vᵀ; dV = gᵀ·x, dA = s·Bᵀ·dV, dB = s·dV·Aᵀ, dx = g·V.
        var dV = [Double](repeating: 0, count: out * inDim)
        for row in 0..<n {
            for o in 0..<out {
                let d = Double(dy[row * out + o])
                dm[o] += xv[row * out + o] * d / norms[o]
                let g = Double(m[o]) / norms[o] * d
                for i in 0..<inDim {
                    dV[o * inDim + i] += g * Double(x[row * inDim + i])
                    dx[row * inDim + i] += g * v[o * inDim + i]
                }
            }
        }
        for k in 0..<rank {
            for i in 0..<inDim {
                dA[k * inDim + i] = scale * (0..<out).reduce(0.0) { $0 + Double(b[$1 * rank + k]) * dV[$1 * inDim + i] }
            }
            for o in 0..<out {
                dB[o * rank + k] = scale * (0..<inDim).reduce(0.0) { $0 + dV[o * inDim + $1] * Double(a[k * inDim + $1]) }
            }
        }
        return (dA, dB, dm, dx)
    }

    private func product(_ x: [Float], _ matrix: [Double], rows n: Int) -> [Double] {
        (0..<(n * out)).map { k in
            let (row, o) = (k / out, k % out)
            return (0..<inDim).reduce(0.0) { $0 + Double(x[row * inDim + $1]) * matrix[o * inDim + $1] }
        }
    }
}
