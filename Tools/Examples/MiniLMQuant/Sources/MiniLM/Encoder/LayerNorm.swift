/// LayerNorm over the last dimension (Ba et al. 2016): (x - mean) / √(var + ε) · γ + β,
/// with the biased variance, as PyTorch computes it.
public struct LayerNorm: Sendable {
    public let gamma: [Float]
    public let beta: [Float]
    public let epsilon: Float

    public init(gamma: [Float], beta: [Float], epsilon: Float) {
        precondition(gamma.count == beta.count, "LayerNorm: shapes disagree")
        self.gamma = gamma
        self.beta = beta
        self.epsilon = epsilon
    }

    /// Normalises `rows` rows of `gamma.count` floats in place.
    func normalize(rows: Int, _ x: UnsafeMutablePointer<Float>) {
        let width = gamma.count
        gamma.withUnsafeBufferPointer { gamma in
            beta.withUnsafeBufferPointer { beta in
                for row in 0..<rows {
                    let v = x + row * width
                    let mean = VectorMath.sum(v, width) / Float(width)
                    let variance = VectorMath.sumOfSquaredDeviations(v, width, from: mean) / Float(width)
                    let scale = 1 / (variance + epsilon).squareRoot()
                    for i in 0..<width { v[i] = (v[i] - mean) * scale * gamma[i] + beta[i] }
                }
            }
        }
    }
}
