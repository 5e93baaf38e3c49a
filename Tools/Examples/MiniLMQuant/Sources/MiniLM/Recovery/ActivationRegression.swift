import AdaptRuntime

/// The float model's output of each adapted map for one batch, recorded on
/// the float pass: the targets of `ActivationRegression`.
public final class FloatOutputs: MapObserver {
    public let maps: Set<EncoderMap>
    public private(set) var outputs: [[EncoderMap: [Float]]]

    public init(layers: Int, maps: [EncoderMap]) {
        self.maps = Set(maps)
        outputs = Array(repeating: [:], count: layers)
    }

    public func mapped(layer: Int, map: EncoderMap, linear: any LinearMap, rows: Int, input: UnsafePointer<Float>,
                output: UnsafeMutablePointer<Float>) throws {
        guard maps.contains(map) else { return }
        outputs[layer][map] = Array(UnsafeBufferPointer(start: output, count: rows * linear.outFeatures))
    }
}

/// Per-layer activation regression towards the float model (the training
/// step of `recover`), run on the quantised model with the adapter applied:
/// at each adapted map the adapter sees the input x̃ the adapted int4 model
/// really produces there, and is asked to make the map's output x̃·Qᵀ + b +
/// x̃·ΔWᵀ equal the float model's x·Wᵀ + b on the same tokens. The loss of a
/// map is that error's ‖·‖² over the batch, divided by the error before the
/// adapter (so every map weighs alike whatever its scale); gradients go
/// through the generated backward and accumulate until the optimizer's step.
/// No gradient crosses layers (each map is its own regression), but the inputs
/// carry every earlier map's remaining error, which the later maps learn to undo.
public final class ActivationRegression<Adapter: GeneratedAdapter>: MapObserver {
    public let adapter: Adapter
    public let binding: AdapterBinding<Adapter>
    public let targets: FloatOutputs
    /// Σ of the maps' losses since `reset()`, and how many were summed.
    public private(set) var loss = 0.0
    public private(set) var terms = 0
    private var before: [Float] = [], dx: [Float] = []

    public init(_ adapter: Adapter, _ binding: AdapterBinding<Adapter>, targets: FloatOutputs) {
        self.adapter = adapter
        self.binding = binding
        self.targets = targets
    }

    public func reset() {
        loss = 0
        terms = 0
    }

    public func mapped(layer: Int, map: EncoderMap, linear: any LinearMap, rows: Int, input: UnsafePointer<Float>,
                output: UnsafeMutablePointer<Float>) throws {
        guard let module = binding.modules[map], let target = targets.outputs[layer][map] else { return }
        let (out, inFeatures) = (linear.outFeatures, linear.inFeatures)
        let count = rows * out
        precondition(target.count == count, "the float pass saw other rows")
        if dx.count < rows * inFeatures { dx = [Float](repeating: 0, count: rows * inFeatures) }
        var missing = 0.0
        for i in 0..<count {
            let d = Double(target[i]) - Double(output[i])
            missing += d * d
        }
        let x = UnsafeBufferPointer(start: input, count: rows * inFeatures)
        let y = UnsafeMutableBufferPointer(start: output, count: count)
        try adapter.forward(layer: layer, module: module, x: x, rows: rows, y: y)
        guard missing > 0 else { return }
        // dy = 2(y − target)/missing, in a buffer of its own: y goes on to the next map.
        if before.count < count { before = [Float](repeating: 0, count: count) }
        var error = 0.0
        let weight = 2 / missing
        for i in 0..<count {
            let r = Double(y[i]) - Double(target[i])
            error += r * r
            before[i] = Float(weight * r)
        }
        loss += error / missing
        terms += 1
        try before.withUnsafeBufferPointer { dy in
            try dx.withUnsafeMutableBufferPointer { dx in
                try adapter.backward(layer: layer, module: module, x: x, dy: UnsafeBufferPointer(rebasing: dy[0..<count]),
                                     rows: rows, dx: UnsafeMutableBufferPointer(rebasing: dx[0..<rows * inFeatures]))
            }
        }
    }
}
