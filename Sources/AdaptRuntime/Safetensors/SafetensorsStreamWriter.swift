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

    public init(path: String, metadata: [String: String], tensors: [(name: String, dtype: DType, shape: [Int])]) throws {
        ordered = tensors.sorted { $0.name.utf8.lexicographicallyPrecedes($1.name.utf8) }
        let (header, _) = try SafetensorsWriter.header(metadata: metadata, tensors: ordered, label: path)
        stream = try AtomicFile.Stream(path: path)
        try stream.write(header)
    }

    /// The next tensor's name in file order, nil when all were appended.
    public var nextName: String? { next < ordered.count ? ordered[next].name : nil }

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

    /// Appends the next tensor from pieces: `produce` calls the function it is
    /// given with consecutive pieces that together make the declared bytes.
    public func appendInPieces(_ name: String, _ produce: ((UnsafeRawBufferPointer) throws -> Void) throws -> Void) throws {
        guard next < ordered.count, ordered[next].name == name else {
            throw SafetensorsError(path: stream.path, tensor: name, "appended out of order (expected \(nextName.map { "\"\($0)\"" } ?? "no more tensors"))")
        }
        let tensor = ordered[next]
        let byteCount = try SafetensorsWriter.expectedByteCount(tensor.name, tensor.dtype, tensor.shape, label: stream.path)
        var written = 0
        try produce { piece in
            guard written + piece.count <= byteCount else {
                throw SafetensorsError(path: stream.path, tensor: name, "more than the \(byteCount) bytes \(tensor.dtype.rawValue) \(tensor.shape) needs")
            }
            try stream.write(piece)
            written += piece.count
        }
        guard written == byteCount else {
            throw SafetensorsError(path: stream.path, tensor: name, "\(written) bytes given, but \(tensor.dtype.rawValue) \(tensor.shape) needs \(byteCount)")
        }
        next += 1
    }

    public func append(_ name: String, bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try append(name, bytes: $0) }
    }

    public func commit() throws {
        guard next == ordered.count else {
            throw SafetensorsError(path: stream.path, tensor: ordered[next].name, "declared but never appended")
        }
        try stream.commit()
    }
}
