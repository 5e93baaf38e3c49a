/// A tensor's name, dtype and shape, known before its data exists.
public struct TensorDeclaration: Sendable, Equatable {
    public var name: String
    public var dtype: DType
    public var shape: [Int]

    public init(name: String, dtype: DType = .f32, shape: [Int]) {
        self.name = name
        self.dtype = dtype
        self.shape = shape
    }

    /// numel × itemsize, rejecting what the reader would reject.
    func byteCount(label: String) throws -> Int {
        if let negative = shape.first(where: { $0 < 0 }) {
            throw SafetensorsError(path: label, tensor: name, "shape \(shape) has negative dimension \(negative)")
        }
        var count = dtype.itemSize
        for dimension in shape where dimension != 0 {
            let (product, overflow) = count.multipliedReportingOverflow(by: dimension)
            guard !overflow else {
                throw SafetensorsError(path: label, tensor: name, "\(dtype.rawValue) \(shape) overflows the byte count")
            }
            count = product
        }
        return shape.contains(0) ? 0 : count
    }
}

/// Writes a safetensors file tensor by tensor, so that memory stays bounded by
/// the largest tensor however large the file (merge, init residual, eval,
/// materialize): the header is written first from the declared shapes, then
/// `append` must be called for each tensor in name order (`order`, UTF-8 bytes,
/// as `SafetensorsWriter` sorts) with exactly the declared bytes. The bytes are
/// exactly `SafetensorsWriter`'s for the same tensors, and the file appears
/// only on `commit()` (`OutputFile`, which also writes FIFOs and devices
/// straight): an error or a crash part-way leaves the previous file as it was.
public final class SafetensorsStreamWriter {
    public let path: String
    /// The names in the order their data must be written (UTF-8 byte order).
    public let order: [String]
    private let tensors: [TensorDeclaration]
    private let byteCounts: [Int]
    private var next = 0
    private let output: OutputFile

    /// Checks the declarations (duplicates, shapes) and writes the header.
    public convenience init(path: String, metadata: [String: String] = [:], tensors: [TensorDeclaration]) throws {
        try self.init(
            path: path, metadata: metadata,
            tensors: tensors.sorted { $0.name.utf8.lexicographicallyPrecedes($1.name.utf8) }, byteCounts: nil)
    }

    /// The same, declarations given as (name, dtype, shape).
    public convenience init(path: String, metadata: [String: String],
                            tensors: [(name: String, dtype: DType, shape: [Int])]) throws {
        try self.init(path: path, metadata: metadata,
                      tensors: tensors.map { TensorDeclaration(name: $0.name, dtype: $0.dtype, shape: $0.shape) })
    }

    /// The next tensor's name in file order, nil when all were appended.
    public var nextName: String? { next < tensors.count ? tensors[next].name : nil }

    /// `tensors` already sorted; `byteCounts`, when given, checked against the shapes.
    init(path: String, metadata: [String: String], tensors: [TensorDeclaration], byteCounts: [Int]?) throws {
        let header = try SafetensorsWriter.header(
            metadata: metadata, tensors: tensors, byteCounts: byteCounts, label: path)
        self.path = path
        self.tensors = tensors
        order = tensors.map(\.name)
        self.byteCounts = try tensors.map { try $0.byteCount(label: path) }
        output = try OutputFile(path: path)
        try output.write(header)
    }

    /// The next tensor's stored bytes, any dtype.
    public func append(_ name: String, bytes: UnsafeRawBufferPointer) throws {
        let index = try expect(name)
        guard bytes.count == byteCounts[index] else {
            let tensor = tensors[index]
            throw SafetensorsError(
                path: path, tensor: name,
                "\(bytes.count) bytes given, but \(tensor.dtype.rawValue) \(tensor.shape) needs \(byteCounts[index])")
        }
        try output.write(bytes)
        next += 1
    }

    /// Appends the next tensor from pieces: `produce` calls the function it is
    /// given with consecutive pieces that together make the declared bytes, so
    /// a large tensor can be copied through a small buffer.
    public func appendInPieces(_ name: String, _ produce: ((UnsafeRawBufferPointer) throws -> Void) throws -> Void) throws {
        let index = try expect(name)
        let tensor = tensors[index], byteCount = byteCounts[index]
        var written = 0
        try produce { piece in
            guard written + piece.count <= byteCount else {
                throw SafetensorsError(
                    path: path, tensor: name, "more than the \(byteCount) bytes \(tensor.dtype.rawValue) \(tensor.shape) needs")
            }
            try output.write(piece)
            written += piece.count
        }
        guard written == byteCount else {
            throw SafetensorsError(
                path: path, tensor: name, "\(written) bytes given, but \(tensor.dtype.rawValue) \(tensor.shape) needs \(byteCount)")
        }
        next += 1
    }

    public func append(_ name: String, bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try append(name, bytes: $0) }
    }

    /// The next tensor's values, which must be declared F32; converted to
    /// little-endian through a small buffer, never a copy of the whole tensor.
    public func append(_ name: String, floats: UnsafeBufferPointer<Float>) throws {
        let index = try expect(name)
        guard tensors[index].dtype == .f32 else {
            throw SafetensorsError(path: path, tensor: name, "is declared \(tensors[index].dtype.rawValue), given F32 values")
        }
        guard 4 * floats.count == byteCounts[index] else {
            throw SafetensorsError(
                path: path, tensor: name,
                "\(floats.count) values given, but \(tensors[index].shape) holds \(byteCounts[index] / 4)")
        }
        let chunk = 16_384
        var buffer = [UInt32](repeating: 0, count: min(chunk, floats.count))
        var start = 0
        while start < floats.count {
            let count = min(chunk, floats.count - start)
            for i in 0..<count { buffer[i] = floats[start + i].bitPattern.littleEndian }
            try buffer.withUnsafeBytes { try output.write(UnsafeRawBufferPointer(rebasing: $0[..<(4 * count)])) }
            start += count
        }
        next += 1
    }

    /// Puts the file in place once every declared tensor was written.
    public func commit() throws {
        guard next == tensors.count else {
            throw SafetensorsError(path: path, tensor: tensors[next].name, "declared but never appended")
        }
        try output.commit()
    }

    private func expect(_ name: String) throws -> Int {
        guard next < tensors.count, tensors[next].name == name else {
            let expected = next < tensors.count ? "\"\(tensors[next].name)\"" : "nothing more"
            throw SafetensorsError(path: path, tensor: name, "appended out of order (expected \(expected))")
        }
        return next
    }
}
