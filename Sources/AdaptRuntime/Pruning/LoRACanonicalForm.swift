/// A LoRA pair with its gauge fixed (DESIGN §2): `s·B·A = (B·G)(G⁻¹·A)` for any
/// invertible G, so "component k" only means something after canonicalising.
/// Thin QR of both factors, `B = Q_B·R_B`, `Aᵀ = Q_A·R_A`, then the SVD of the
/// small product `R_B·R_Aᵀ = U·Σ·Vᵀ` gives `ΔW = Σ_k σ_k·u_k·v_kᵀ` with
/// orthonormal `u_k = (Q_B·U)[:, k]`, `v_k = (Q_A·V)[:, k]` and σ descending
/// (scale included). Everything in float64.
public struct LoRACanonicalForm: Sendable {
    public let outFeatures: Int
    public let inFeatures: Int
    /// σ_k, descending, scale included; count = components.
    public let singularValues: [Double]
    /// u_k as columns: `[out, components]`, row-major.
    public let leftVectors: [Double]
    /// v_k as columns: `[in, components]`, row-major.
    public let rightVectors: [Double]

    public var components: Int { singularValues.count }

    public init(_ factors: LoRAFactors) {
        self.init(b: factors.b.map(Double.init), a: factors.a.map(Double.init), rank: factors.rank,
                  outFeatures: factors.outFeatures, inFeatures: factors.inFeatures, scale: factors.scale)
    }

    /// `ΔW = scale·B·A` with float64 factors B `[out, rank]`, A `[rank, in]`.
    public init(b: [Double], a: [Double], rank: Int, outFeatures: Int, inFeatures: Int, scale: Double) {
        self.outFeatures = outFeatures
        self.inFeatures = inFeatures
        var aT = [Double](repeating: 0, count: inFeatures * rank)
        for k in 0..<rank { for i in 0..<inFeatures { aT[i * rank + k] = a[k * inFeatures + i] } }
        let qrB = DenseLinearAlgebra.thinQR(b, rows: outFeatures, cols: rank)
        let qrA = DenseLinearAlgebra.thinQR(aT, rows: inFeatures, cols: rank)
        // R_B·R_Aᵀ: [kB, rank]·[rank, kA].
        let core = DenseLinearAlgebra.multiply(qrB.r, qrA.r, m: qrB.k, n: qrA.k, k: rank, transB: true)
        let svd = DenseLinearAlgebra.svd(core, rows: qrB.k, cols: qrA.k)
        // A negative scale flips the sign of u, so σ stays ≥ 0.
        let sign = scale < 0 ? -1.0 : 1.0
        leftVectors = DenseLinearAlgebra.multiply(qrB.q, svd.u, m: outFeatures, n: svd.k, k: qrB.k).map { sign * $0 }
        rightVectors = DenseLinearAlgebra.multiply(qrA.q, svd.vt, m: inFeatures, n: svd.k, k: qrA.k, transB: true)
        singularValues = svd.s.map { $0 * abs(scale) }
    }

    /// Data-weighted share of each component on rows `x` `[n, in]`:
    /// `σ_k²·Σ_rows (v_kᵀx)²`. They sum to `Σ_rows ‖x·ΔWᵀ‖²` exactly, since the
    /// u_k are orthonormal (DESIGN §4).
    public func componentEnergies(x: UnsafeBufferPointer<Float>, rows n: Int) -> [Double] {
        precondition(x.count == n * inFeatures, "componentEnergies: x has \(x.count) elements, expected \(n * inFeatures)")
        let c = components
        if n == 0 || c == 0 { return [Double](repeating: 0, count: c) }
        let xd = x.map(Double.init)
        let projections = DenseLinearAlgebra.multiply(xd, rightVectors, m: n, n: c, k: inFeatures)
        var sums = [Double](repeating: 0, count: c)
        for row in 0..<n { for k in 0..<c { let p = projections[row * c + k]; sums[k] += p * p } }
        return (0..<c).map { singularValues[$0] * singularValues[$0] * sums[$0] }
    }

    /// The adapter of the components `kept` (in that order), exactly
    /// `Σ_{k∈kept} σ_k·u_k·v_kᵀ`, written as `scale·B·A` for the pair's new scale:
    /// `B[:, j] = u_k·√(σ_k/|scale|)`, `A[j, :] = √(σ_k/|scale|)·v_kᵀ` (balanced,
    /// as PiSSA splits its SVD), the sign of the scale folded into B.
    public func factors(keeping kept: [Int], scale: Double) -> LoRAFactors {
        precondition(scale != 0 && !kept.isEmpty)
        let r = kept.count, c = components
        var b = [Float](repeating: 0, count: outFeatures * r)
        var a = [Float](repeating: 0, count: r * inFeatures)
        let sign = scale < 0 ? -1.0 : 1.0
        for (j, k) in kept.enumerated() {
            let weight = (singularValues[k] / abs(scale)).squareRoot()
            for o in 0..<outFeatures { b[o * r + j] = Float(sign * weight * leftVectors[o * c + k]) }
            for i in 0..<inFeatures { a[j * inFeatures + i] = Float(weight * rightVectors[i * c + k]) }
        }
        return LoRAFactors(a: a, b: b, rank: r, outFeatures: outFeatures, inFeatures: inFeatures, scale: scale)
    }
}
