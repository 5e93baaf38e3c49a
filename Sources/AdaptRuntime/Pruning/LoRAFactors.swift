/// One pair's LoRA adapter as plain arrays: `ΔW = scale·B·A`, A `[rank, in]`,
/// B `[out, rank]`, row-major (DESIGN §2). What the pruner reads and writes.
public struct LoRAFactors: Sendable, Equatable {
    /// A `[rank, in]`, row-major.
    public var a: [Float]
    /// B `[out, rank]`, row-major.
    public var b: [Float]
    /// r.
    public var rank: Int
    /// Output width of ΔW.
    public var outFeatures: Int
    /// Input width of ΔW.
    public var inFeatures: Int
    /// s in ΔW = s·B·A (alpha/r, or alpha/√r with rslora).
    public var scale: Double

    /// Factors with their shapes; traps when a count does not match (a caller bug).
    public init(a: [Float], b: [Float], rank: Int, outFeatures: Int, inFeatures: Int, scale: Double) {
        precondition(a.count == rank * inFeatures && b.count == outFeatures * rank, "LoRAFactors: A or B does not match its shape")
        self.a = a
        self.b = b
        self.rank = rank
        self.outFeatures = outFeatures
        self.inFeatures = inFeatures
        self.scale = scale
    }

    /// Stored parameters: r·(in + out).
    public var parameterCount: Int { rank * (inFeatures + outFeatures) }

    /// `ΔW` `[out, in]` in float64, scale included — for references and small checks.
    public func delta() -> [Double] {
        let bd = b.map(Double.init), ad = a.map(Double.init)
        return DenseLinearAlgebra.multiply(bd, ad, m: outFeatures, n: inFeatures, k: rank).map { $0 * scale }
    }
}
