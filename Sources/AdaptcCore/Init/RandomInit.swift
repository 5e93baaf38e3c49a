import AdaptRuntime

/// `zero` and `gaussian` for lora tensors (DESIGN §3), as PEFT draws them:
/// A ~ kaiming_uniform_(a=√5) on [r, in], i.e. U(−1/√in, 1/√in), or
/// N(0, (1/r)²) for gaussian; B stays zero, so ΔW = 0 at the start.
enum RandomInit {
    static func fill(_ tensor: ParameterTensor, method: InitMethod, seed: UInt64, into target: UnsafeMutablePointer<Float>) {
        guard case .loraA? = tensor.name?.role else { return }
        var random = SeededRandom(seed: seed, stream: tensor.key)
        let (rank, inFeatures) = (tensor.shape[0], tensor.shape[1])
        for i in 0..<tensor.count {
            target[i] = method == .gaussian
                ? random.normal(standardDeviation: 1 / Double(rank))
                : random.uniform(1 / Double(inFeatures).squareRoot())
        }
    }

    /// Tensor structures start with ΔW = 0 and random other tensors (DESIGN §3):
    /// the tensor kept at zero is the tensor-train core of the first out mode in
    /// `order`, CP's factor of the first out mode, or Tucker's core.
    static func zeroTensorKey(_ group: ResolvedGroup) -> TensorKey {
        let firstOut = group.modes.firstIndex { $0.name.kind == .out } ?? 0
        switch group.ranks {
        case .tensorTrain: return TensorKey(group: group.name, role: .core(firstOut))
        case .cp: return TensorKey(group: group.name, role: .factor(mode: "\(group.modes[firstOut].name)"))
        case .tucker, .lora: return TensorKey(group: group.name, role: .tuckerCore)
        }
    }

    /// A random core or factor: `zero` draws U(−1/√f, 1/√f) and `gaussian`
    /// N(0, 1/f) with f = the product of the tensor's dimensions other than its
    /// largest (its fan-in along the chain), so products of several cores keep
    /// unit scale whatever the ranks.
    static func fillCore(_ tensor: ParameterTensor, method: InitMethod, seed: UInt64, into target: UnsafeMutablePointer<Float>) {
        var random = SeededRandom(seed: seed, stream: tensor.key)
        let largest = tensor.shape.max() ?? 1
        let fan = Double(max(1, tensor.count / max(largest, 1)))
        for i in 0..<tensor.count {
            target[i] = method == .gaussian
                ? random.normal(standardDeviation: 1 / fan.squareRoot())
                : random.uniform(1 / fan.squareRoot())
        }
    }
}
