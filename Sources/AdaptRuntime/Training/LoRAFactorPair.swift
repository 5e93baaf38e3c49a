/// Where one lora pair's factors live in `parameters`: A `[rank, in]` and
/// B `[out, rank]` (ΔW = scale·B·A, DESIGN §2), found from the adapter-file
/// keys `GROUP.LAYER.MODULE.A` / `.B` (or `GROUP.shared.MODULE.A` / `.B`).
public struct LoRAFactorPair: Hashable, Sendable {
    /// The `…A` tensor, `[rank, in]`.
    public var a: ParameterTensor
    /// The `…B` tensor, `[out, rank]`.
    public var b: ParameterTensor

    /// Rank r of the pair.
    public var rank: Int { a.shape[0] }
    /// Input width of ΔW.
    public var inFeatures: Int { a.shape[1] }
    /// Output width of ΔW.
    public var outFeatures: Int { b.shape[0] }

    /// Every lora pair of a layout, in layout order of their A tensors. A lora
    /// `A` counts only with the `B` of its block and module, of matching rank;
    /// tensors of tensor structures (`GROUP.core.K`, `GROUP.factor.MODE`) never match.
    public static func pairs(in layout: [ParameterTensor]) -> [LoRAFactorPair] {
        var byName: [TensorKey: ParameterTensor] = [:]
        for tensor in layout { if let name = tensor.name { byName[name] = tensor } }
        return layout.compactMap { a in
            guard let name = a.name, case let .loraA(block, module) = name.role, a.shape.count == 2,
                  let b = byName[.loraB(name.group, block, module)], b.shape.count == 2, b.shape[1] == a.shape[0]
            else { return nil }
            return LoRAFactorPair(a: a, b: b)
        }
    }
}
