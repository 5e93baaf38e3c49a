extension AdapterStorage {
    /// Copies every tensor of `layout` from a safetensors file into the parameter
    /// buffer. Missing tensors, shape mismatches and NaN/Inf are errors naming the key.
    /// Tensors the layout does not name are an error too: a file for the same
    /// spec never has them, so they mean a damaged or hand-edited file whose
    /// extra weights would otherwise be dropped without a word.
    public func load(_ file: SafetensorsFile, layout: [ParameterTensor]) throws {
        let known = Set(layout.map(\.key))
        let unknown = file.tensors.map(\.name).filter { !known.contains($0) }
        if !unknown.isEmpty {
            let shown = unknown.prefix(5).map { "\"\($0)\"" }.joined(separator: ", ")
            let more = unknown.count > 5 ? " and \(unknown.count - 5) more" : ""
            throw AdapterError("\(file.path): \(unknown.count) tensor\(unknown.count == 1 ? "" : "s") the spec does not know: \(shown)\(more)")
        }
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

    /// Writes the parameters straight from the parameter buffer, tensor by
    /// tensor (`SafetensorsStreamWriter`): no copy of the whole adapter is made.
    public func write(layout: [ParameterTensor], metadata: [String: String], to path: String) throws {
        let writer = try SafetensorsStreamWriter(
            path: path, metadata: metadata, tensors: layout.map { TensorDeclaration(name: $0.key, shape: $0.shape) })
        let byKey = Dictionary(uniqueKeysWithValues: layout.map { ($0.key, $0) })
        for key in writer.order {
            let tensor = byKey[key]!
            // Through `parameterBase`: saving must not mark prepared state (or DoRA's norms) stale.
            try writer.append(key, floats: UnsafeBufferPointer(start: parameterBase + tensor.offset, count: tensor.count))
        }
        try writer.commit()
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
        try weights.requireSpec(Self.specName, hash: Self.specHash)
        self.init(threads: threads)
        try storage.load(weights, layout: Self.parameterLayout)
        prepare()
    }
}

extension SafetensorsFile {
    /// Refuses a file not written for the spec whose `adaptc.hash` is `hash`
    /// (DESIGN §5): no hash at all (a PEFT file, say) or another spec's. The
    /// one check behind generated `init(weights:)` and every `adaptc` command
    /// that reads an adapter.
    /// - Parameters:
    ///   - spec: The spec's name, for the message.
    ///   - hash: The spec's `adaptc.hash`.
    public func requireSpec(_ spec: String, hash: String) throws {
        guard let fileHash = metadata["adaptc.hash"] else { throw AdapterError.missingSpecHash(path: path) }
        guard fileHash == hash else {
            throw AdapterError.otherSpec(path: path, fileHash: fileHash, spec: spec, specHash: hash)
        }
    }
}
