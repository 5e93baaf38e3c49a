/// What LoRA-drop gives the dropped layers of one module: one adapter shared by
/// all of them, the rank-r truncated SVD of their mean ΔW (DESIGN §4) —
/// the best rank-r approximation in Frobenius norm (Eckart–Young).
///
/// The mean is never materialised: `(1/D)·Σ_l s_l·B_l·A_l = [B_1 … B_D]·diag(s_l/D)·[A_1; …; A_D]`
/// is itself a product of thin factors of inner size Σ r_l, which the canonical
/// form (QR of both, SVD of the small core) turns into its SVD.
public enum SharedAdapter {
    /// The rank-`rank` SVD of the mean of `deltas` (all of one shape), written
    /// as `scale·B·A`. Fewer components than `rank` (a mean of low rank) are
    /// padded with zero columns/rows, so the result always has rank `rank` slots.
    public static func truncatedMean(of deltas: [LoRAFactors], rank: Int, scale: Double) -> LoRAFactors {
        precondition(!deltas.isEmpty && rank >= 1)
        let out = deltas[0].outFeatures, inFeatures = deltas[0].inFeatures
        let inner = deltas.map(\.rank).reduce(0, +)
        var b = [Double](repeating: 0, count: out * inner)
        var a = [Double](repeating: 0, count: inner * inFeatures)
        var column = 0
        for delta in deltas {
            precondition(delta.outFeatures == out && delta.inFeatures == inFeatures)
            let weight = delta.scale / Double(deltas.count)
            for o in 0..<out { for k in 0..<delta.rank { b[o * inner + column + k] = weight * Double(delta.b[o * delta.rank + k]) } }
            for k in 0..<delta.rank { for i in 0..<inFeatures { a[(column + k) * inFeatures + i] = Double(delta.a[k * inFeatures + i]) } }
            column += delta.rank
        }
        let canonical = LoRACanonicalForm(b: b, a: a, rank: inner, outFeatures: out, inFeatures: inFeatures, scale: 1)
        let kept = Array(0..<min(rank, canonical.components))
        return padded(canonical.factors(keeping: kept, scale: scale), rank: rank)
    }

    /// `factors` with zero components appended up to `rank` slots (ΔW unchanged).
    public static func padded(_ factors: LoRAFactors, rank: Int) -> LoRAFactors {
        guard factors.rank < rank else { return factors }
        let (out, inFeatures, r) = (factors.outFeatures, factors.inFeatures, factors.rank)
        var b = [Float](repeating: 0, count: out * rank)
        for o in 0..<out { for k in 0..<r { b[o * rank + k] = factors.b[o * r + k] } }
        let a = factors.a + [Float](repeating: 0, count: (rank - r) * inFeatures)
        return LoRAFactors(a: a, b: b, rank: rank, outFeatures: out, inFeatures: inFeatures, scale: factors.scale)
    }
}
