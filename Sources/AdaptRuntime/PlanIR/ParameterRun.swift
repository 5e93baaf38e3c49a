/// Per-layer tensors of one kind laid out at a fixed stride: a lora group's
/// `A` of one module in every layer, say. Generated files write a layout of
/// many pairs as a few runs instead of one literal per tensor (issue 23: the
/// layer as an index source of the layout, as of the programs);
/// `ParameterTensor.layout(_:runs:)` expands them, keys rendered by `TensorKey`.
public struct ParameterRun: Hashable, Sendable {
    /// Which per-layer tensor of a pair: `A`, `B` or DoRA's magnitude.
    public enum Role: String, Hashable, Sendable { case A, B, magnitude }

    public var group: String
    public var role: Role
    public var module: String
    public var layers: [Int]
    public var shape: [Int]
    /// The offset of the tensor of `layers[0]`; layer l's is `offset + layerStride·(l − layers[0])`.
    public var offset: Int
    public var layerStride: Int
    public var trainable: Bool

    public init(group: String, role: Role, module: String, layers: [Int], shape: [Int], offset: Int, layerStride: Int,
                trainable: Bool = true) {
        self.group = group
        self.role = role
        self.module = module
        self.layers = layers
        self.shape = shape
        self.offset = offset
        self.layerStride = layerStride
        self.trainable = trainable
    }

    public func key(layer: Int) -> TensorKey {
        switch role {
        case .A: return .loraA(group, .layer(layer), module)
        case .B: return .loraB(group, .layer(layer), module)
        case .magnitude: return TensorKey(group: group, role: .magnitude(layer: layer, module: module))
        }
    }

    /// The run's tensors, in layer order.
    public var tensors: [ParameterTensor] {
        layers.map { l in
            ParameterTensor(key: key(layer: l).description, shape: shape, offset: offset + layerStride * (l - layers[0]),
                            trainable: trainable)
        }
    }
}

extension ParameterTensor {
    /// `tensors` and the tensors of `runs` in buffer order (by offset).
    public static func layout(_ tensors: [ParameterTensor], runs: [ParameterRun]) -> [ParameterTensor] {
        (tensors + runs.flatMap(\.tensors)).sorted { $0.offset < $1.offset }
    }
}
