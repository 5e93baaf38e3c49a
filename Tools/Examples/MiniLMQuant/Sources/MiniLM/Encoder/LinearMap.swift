import AdaptRuntime

/// y = x·Wᵀ + b on a block of token rows: the encoder's q/k/v/o and FFN maps.
///
/// A protocol so that a quantised weight can stand in for the float one, and
/// an adapter's `forward` can be added to the output after `apply`.
public protocol LinearMap: Sendable {
    var inFeatures: Int { get }
    var outFeatures: Int { get }
    /// output[rows, outFeatures] = input[rows, inFeatures]·Wᵀ + b, row strides
    /// `inFeatures` and `outFeatures`; single-threaded (callers split rows).
    func apply(rows: Int, input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>)
}

/// A float `LinearMap`: PyTorch's `nn.Linear`, weight [out, in] row-major.
public struct Linear: LinearMap {
    public let weight: [Float]
    public let bias: [Float]
    public let inFeatures: Int
    public let outFeatures: Int

    public init(weight: [Float], bias: [Float], inFeatures: Int, outFeatures: Int) {
        precondition(weight.count == inFeatures * outFeatures && bias.count == outFeatures, "Linear: shapes disagree")
        self.weight = weight
        self.bias = bias
        self.inFeatures = inFeatures
        self.outFeatures = outFeatures
    }

    public func apply(rows: Int, input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>) {
        bias.withUnsafeBufferPointer { bias in
            for row in 0..<rows { (output + row * outFeatures).update(from: bias.baseAddress!, count: outFeatures) }
        }
        weight.withUnsafeBufferPointer { weight in
            BLAS.gemm(transA: false, transB: true, m: rows, n: outFeatures, k: inFeatures,
                      alpha: 1, a: input, lda: inFeatures, b: weight.baseAddress!, ldb: inFeatures,
                      beta: 1, c: output, ldc: outFeatures)
        }
    }
}
