/// Writes a safetensors file one tensor at a time, so a checkpoint of any size
/// passes through with at most one tensor in memory (merge, init residual).
/// The header is fixed up front from the tensors' names, dtypes and shapes;
/// `append` must then be called in name order (UTF-8 bytes, as
/// `SafetensorsWriter` sorts) with exactly the declared bytes. The file is
/// byte-identical to what `SafetensorsWriter` writes for the same contents and
/// appears atomically on `commit()`; without it nothing is left behind.
public final class SafetensorsStreamWriter {
    private let stream: AtomicFile.Stream
    private let ordered: [(name: String, dtype: DType, shape: [Int])]
    private var next = 0

    /// Starts a file at `path` whose header lists `tensors` up front; their data follow with `append` in that order.
    public init(path: String, metadata: [String: String], tensors: [(name: String, dtype: DType, shape: [Int])]) throws {
        ordered = tensors.sorted { $0.name.utf8.lexicographicallyPrecedes($1.name.utf8) }
        let (header, _) = try SafetensorsWriter.header(metadata: metadata, tensors: ordered, label: path)
        stream = try AtomicFile.Stream(path: path)
        try stream.write(header)
    }

    /// The next tensor's name in file order, nil when all were appended.
    public var nextName: String? { next < ordered.count ? ordered[next].name : nil }

    /// Writes the data of the next tensor, which must be `name`, with its exact byte count.
    public func append(_ name: String, bytes: UnsafeRawBufferPointer) throws {
        guard next < ordered.count, ordered[next].name == name else {
            throw SafetensorsError(path: stream.path, tensor: name, "appended out of order (expected \(nextName.map { "\"\($0)\"" } ?? "no more tensors"))")
        }
        let tensor = ordered[next]
        let byteCount = try SafetensorsWriter.expectedByteCount(tensor.name, tensor.dtype, tensor.shape, label: stream.path)
        guard bytes.count == byteCount else {
            throw SafetensorsError(path: stream.path, tensor: name,
                                   "\(bytes.count) bytes given, but \(tensor.dtype.rawValue) \(tensor.shape) needs \(byteCount)")
        }
        try stream.write(bytes)
        next += 1
    }

    /// Writes the data of the next tensor, which must be `name`, with its exact byte count.
    public func append(_ name: String, bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try append(name, bytes: $0) }
    }

    /// Checks every tensor was written, then makes the file visible at its path atomically.
    public func commit() throws {
        guard next == ordered.count else {
            throw SafetensorsError(path: stream.path, tensor: ordered[next].name, "declared but never appended")
        }
        try stream.commit()
    }
}
