import AdaptRuntime

/// `zero` and `gaussian` for lora tensors (DESIGN §3), as PEFT draws them:
/// A ~ kaiming_uniform_(a=√5) on [r, in], i.e. U(−1/√in, 1/√in), or
/// N(0, (1/r)²) for gaussian; B stays zero, so ΔW = 0 at the start.
enum RandomInit {
    static func fill(_ tensor: ParameterTensor, method: InitMethod, seed: UInt64, into target: UnsafeMutablePointer<Float>) {
        guard tensor.key.hasSuffix(".A") else { return }
        var random = SeededRandom(seed: seed, stream: tensor.key)
        let (rank, inFeatures) = (tensor.shape[0], tensor.shape[1])
        for i in 0..<tensor.count {
            target[i] = method == .gaussian
                ? random.normal(standardDeviation: 1 / Double(rank))
                : random.uniform(1 / Double(inFeatures).squareRoot())
        }
    }
}
