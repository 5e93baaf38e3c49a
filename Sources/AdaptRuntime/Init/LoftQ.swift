/// LoftQ (Li et al. 2023) for one lora pair, as PEFT's `loftq_init`: W [out, in]
/// row-major is split into a quantised base Q and rank-r factors so that
/// Q + s·B·A ≈ W, by alternating for T iterations
///
///     Q_t  = dequantise(quantise(W − s·B_{t−1}·A_{t−1}))     (B_0·A_0 = 0)
///     B_t, A_t = rank-r truncated SVD of W − Q_t, √(σ/s) into each factor
///
/// (PEFT puts √σ into both, `L = U·√S`, `R = √S·Vᵀ`, and ignores the scale; with
/// s = 1 the two agree, and for any s, s·B·A is the same truncation, as pissa).
/// The Q returned is Q_T, the one the last factors were fitted to — what the
/// quantised model computes with — not a fresh quantisation of W − s·B_T·A_T.
public enum LoftQ {
    public struct Result: Sendable {
        /// [r, in] and [out, r] row-major.
        public var a: [Float]
        public var b: [Float]
        /// Q_T as codes and scales.
        public var quantised: Quantiser.Quantised
        /// ‖W − (Q_t + s·B_t·A_t)‖_F / ‖W‖_F after each iteration t = 1…T.
        public var relativeErrors: [Double]
        /// ‖W − Q_1‖_F / ‖W‖_F: the error of quantising W alone.
        public var quantisationError: Double
        /// ‖W‖²_F in float64.
        public var weightEnergy: Double
    }

    public static func initialise(_ w: UnsafeBufferPointer<Float>, out: Int, in inFeatures: Int, rank: Int, scale: Double,
                                  quantiser: Quantiser, iterations: Int,
                                  decomposition: PrincipalInit.Decomposition, threads: Int = 1) throws -> Result {
        precondition(w.count == out * inFeatures && iterations >= 1 && scale > 0)
        let total = w.reduce(0.0) { $0 + Double($1) * Double($1) }
        let norm = total == 0 ? 1 : total.squareRoot()
        // `target` is what the next iteration quantises: W, then W − s·B·A.
        var target = Array(w)
        var quantised = Quantiser.Quantised(rows: out, columns: inFeatures, codes: [], scales: [])
        var q = [Float](repeating: 0, count: w.count), residual = q
        var factors = PrincipalInit.Factors(a: [], b: [], capturedEnergy: 0, sigma: [])
        var errors: [Double] = [], quantisationError = 0.0
        for t in 0..<iterations {
            quantised = try target.withUnsafeBufferPointer {
                try quantiser.quantise($0, rows: out, columns: inFeatures, threads: threads)
            }
            q.withUnsafeMutableBufferPointer { quantiser.dequantise(quantised, into: $0, threads: threads) }
            for i in 0..<w.count { residual[i] = w[i] - q[i] }
            if t == 0 { quantisationError = sumOfSquares(residual).squareRoot() / norm }
            factors = try residual.withUnsafeBufferPointer {
                try PrincipalInit.factors($0, out: out, in: inFeatures, rank: rank, scale: scale, method: .pissa,
                                          decomposition: decomposition)
            }
            // target = W − s·B·A; what Q_t + s·B·A misses is target − Q_t.
            target.withUnsafeMutableBufferPointer { target in
                _ = target.update(fromContentsOf: w)
                PrincipalInit.subtract(factors, scale: scale, from: target, out: out, in: inFeatures, rank: rank)
            }
            var missed = 0.0
            for i in 0..<w.count { missed += (Double(target[i]) - Double(q[i])) * (Double(target[i]) - Double(q[i])) }
            errors.append(missed.squareRoot() / norm)
        }
        return Result(a: factors.a, b: factors.b, quantised: quantised, relativeErrors: errors,
                      quantisationError: quantisationError, weightEnergy: total)
    }

    private static func sumOfSquares(_ x: [Float]) -> Double { x.reduce(0.0) { $0 + Double($1) * Double($1) } }
}
