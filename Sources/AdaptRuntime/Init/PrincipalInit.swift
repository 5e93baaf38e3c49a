/// LoRA factors taken from the base weight itself (DESIGN §3), for one pair:
/// W [out, in] row-major → A [r, in], B [out, r] with scale s.
///
/// - pissa (Meng et al. 2024): W ≈ U_r·Σ_r·V_rᵀ, A = diag(√(σ/s))·V_rᵀ,
///   B = U_r·diag(√(σ/s)), so s·B·A is the rank-r truncation, as PEFT does.
/// - milora (Wang et al. 2024): the same with the r smallest triplets.
/// - olora (Büyükakyüz 2024): thin QR W = Q·R, B = Q[:, :r], A = R[:r, :]
///   (PEFT's `olora_init`: no scale in the factors).
///
/// The residual a caller writes back is W − s·B·A for every method.
public enum PrincipalInit {
    public enum Method: String, Sendable { case pissa, milora, olora }

    public enum Decomposition: Sendable, Equatable {
        case exact
        case randomized(TruncatedSVD.Randomized)
    }

    public struct Factors: Sendable {
        /// [r, in] row-major.
        public var a: [Float]
        /// [out, r] row-major.
        public var b: [Float]
        /// ‖s·B·A‖²_F / ‖W‖²_F as the decomposition reports it.
        public var capturedEnergy: Double
        /// The kept singular values (empty for olora).
        public var sigma: [Float]
    }

    public static func factors(_ w: UnsafeBufferPointer<Float>, out: Int, in inFeatures: Int, rank: Int,
                               scale: Double, method: Method, decomposition: Decomposition) throws -> Factors {
        precondition(w.count == out * inFeatures && rank >= 1 && rank <= min(out, inFeatures))
        switch method {
        case .pissa, .milora:
            precondition(scale > 0, "pissa/milora need a positive scale")
            let svd: TruncatedSVD
            switch (method, decomposition) {
            case (.pissa, .randomized(let settings)):
                svd = try TruncatedSVD.randomized(w, m: out, n: inFeatures, rank: rank, settings: settings)
            default:
                svd = try TruncatedSVD.exact(w, m: out, n: inFeatures, rank: rank,
                                             selection: method == .pissa ? .largest : .smallest)
            }
            let root = svd.sigma.map { Float((Double($0) / scale).squareRoot()) }
            var a = svd.vt, b = svd.u
            for i in 0..<rank {
                for j in 0..<inFeatures { a[i * inFeatures + j] *= root[i] }
            }
            for row in 0..<out {
                for i in 0..<rank { b[row * rank + i] *= root[i] }
            }
            return Factors(a: a, b: b, capturedEnergy: svd.capturedEnergy, sigma: svd.sigma)
        case .olora:
            let k = min(out, inFeatures)
            // Column-major W (LAPACK's layout), then W = Q·R.
            var columnMajor = [Float](repeating: 0, count: out * inFeatures)
            var total = 0.0
            for row in 0..<out {
                for column in 0..<inFeatures {
                    let x = w[row * inFeatures + column]
                    columnMajor[column * out + row] = x
                    total += Double(x) * Double(x)
                }
            }
            var q = [Float](repeating: 0, count: out * k), r = [Float](repeating: 0, count: k * inFeatures)
            try LAPACK.qr(m: out, n: inFeatures, a: &columnMajor, q: &q, r: &r)
            var a = [Float](repeating: 0, count: rank * inFeatures), b = [Float](repeating: 0, count: out * rank)
            var kept = 0.0
            for i in 0..<rank {
                for column in 0..<inFeatures {
                    let x = r[column * k + i]
                    a[i * inFeatures + column] = x
                    kept += Double(x) * Double(x)
                }
                for row in 0..<out { b[row * rank + i] = q[i * out + row] }
            }
            return Factors(a: a, b: b, capturedEnergy: total == 0 ? 1 : kept / total, sigma: [])
        }
    }

    /// W −= s·B·A in place (the residual PEFT writes back to the base model).
    public static func subtract(_ factors: Factors, scale: Double, from w: UnsafeMutableBufferPointer<Float>,
                                out: Int, in inFeatures: Int, rank: Int) {
        BLAS.gemm(transA: false, transB: false, m: out, n: inFeatures, k: rank, alpha: Float(-scale),
                  a: factors.b, lda: rank, b: factors.a, ldb: inFeatures, beta: 1, c: w.baseAddress!, ldc: inFeatures)
    }
}
