extension GeneratedAdapter {
    /// The metadata every adapter file of this spec carries (DESIGN §5):
    /// `adaptc.spec`, `adaptc.version` and `adaptc.hash`.
    public static var fileMetadata: [String: String] {
        ["adaptc.spec": specName, "adaptc.version": AdaptRuntimeVersion.string, "adaptc.hash": specHash]
    }

    /// The parameters as an adapter file (adaptc layout: one F32 tensor per
    /// `parameterLayout` entry, ``fileMetadata``), ready to write or extend.
    /// `metadata` adds an app's own keys; the `adaptc.*` keys always win.
    public func adapterFile(metadata: [String: String] = [:]) throws -> SafetensorsWriter {
        let values = UnsafeBufferPointer(start: storage.parameterBase, count: Self.parameterCount)
        if let bad = values.firstIndex(where: { !$0.isFinite }) {
            let key = Self.parameterLayout.first { bad >= $0.offset && bad < $0.offset + $0.count }?.key ?? "parameters"
            throw AdapterError.nonFiniteParameter(key: key, index: bad)
        }
        return storage.writer(layout: Self.parameterLayout, metadata: metadata.merging(Self.fileMetadata) { _, adaptc in adaptc })
    }

    /// Writes the parameters to a safetensors file at `path` that `init(weights:)`,
    /// `adaptc eval`, `merge`, `prune` and `export-peft` read. Atomic: a temporary
    /// file in the same folder, then a rename, so a crash or a full disk never
    /// leaves a half-written file (the old file, if any, stays). Throws
    /// ``AdapterError/nonFiniteParameter(key:index:)`` for NaN/Inf parameters and
    /// `FileWriteError` when the file cannot be written. Does not mark prepared
    /// state stale.
    public func save(to path: String, metadata: [String: String] = [:]) throws {
        try adapterFile(metadata: metadata).write(to: path)
    }
}
