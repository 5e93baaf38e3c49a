extension AdapterStorage {
    /// Copies every tensor of `layout` from a safetensors file into the parameter
    /// buffer. Missing tensors, shape mismatches and NaN/Inf are errors naming the key.
    public func load(_ file: SafetensorsFile, layout: [ParameterTensor]) throws {
        for tensor in layout {
            guard let entry = file.entry(tensor.key) else {
                throw AdapterError.missingTensor(path: file.path, key: tensor.key, shape: tensor.shape)
            }
            guard entry.shape == tensor.shape else {
                throw AdapterError.tensorShapeMismatch(path: file.path, key: tensor.key, shape: entry.shape, expected: tensor.shape)
            }
            let values = try file.floats(tensor.key)
            values.withUnsafeBufferPointer { source in
                (parameters.baseAddress! + tensor.offset).update(from: source.baseAddress!, count: tensor.count)
            }
        }
    }

    /// The parameters as a safetensors writer, keys and shapes from `layout`.
    public func writer(layout: [ParameterTensor], metadata: [String: String]) -> SafetensorsWriter {
        var writer = SafetensorsWriter(metadata: metadata)
        for tensor in layout {
            // Reads through `parameterBase`: saving must not mark prepared state stale.
            let values = UnsafeBufferPointer(start: parameterBase + tensor.offset, count: tensor.count)
            writer.add(tensor.key, floats: Array(values), shape: tensor.shape)
        }
        return writer
    }
}

extension PlanInterpreter {
    /// Loads every parameter from an adapter file (adaptc layout).
    public func load(_ file: SafetensorsFile) throws {
        try storage.load(file, layout: plan.parameters)
    }
}

extension GeneratedAdapter {
    /// Loads parameters from an adapter file written for this spec; a file from
    /// another spec (hash mismatch) is refused.
    public init(weights: SafetensorsFile, threads: Int = 0) throws {
        guard let hash = weights.metadata["adaptc.hash"] else {
            throw AdapterError.missingSpecHash(path: weights.path)
        }
        guard hash == Self.specHash else {
            throw AdapterError.otherSpec(path: weights.path, fileHash: hash, spec: Self.specName, specHash: Self.specHash)
        }
        self.init(threads: threads)
        try storage.load(weights, layout: Self.parameterLayout)
        prepare()
    }
}
