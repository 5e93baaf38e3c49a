/// Builds a safetensors file whose bytes depend only on its contents, never on
/// the order tensors were added (STYLE: determinism): `__metadata__` first, with
/// sorted keys, then tensors sorted by name with their data in that order; compact
/// JSON; the header padded with spaces to a multiple of 8 so the data section
/// stays 8-byte aligned (DESIGN §5). Within an entry the keys keep the order
/// safetensors itself writes (dtype, shape, data_offsets); names and metadata
/// keys sort by UTF-8 bytes, like the reader's `tensors`.
public struct SafetensorsWriter: Sendable {
    /// Written as `__metadata__`, keys sorted.
    public var metadata: [String: String]
    private var tensors: [Tensor] = []

    private struct Tensor: Sendable {
        let name: String
        let dtype: DType
        let shape: [Int]
        let bytes: [UInt8]
    }

    /// An empty file with `metadata`.
    public init(metadata: [String: String] = [:]) {
        self.metadata = metadata
    }

    /// Adds an F32 tensor. Problems (a duplicate name, a count that does not
    /// match `shape`) are reported by `encoded()`, so building never throws.
    public mutating func add(_ name: String, floats: [Float], shape: [Int]) {
        let bytes = [UInt8](unsafeUninitializedCapacity: 4 * floats.count) { buffer, initialized in
            let raw = UnsafeMutableRawBufferPointer(buffer)
            for (index, value) in floats.enumerated() {
                raw.storeBytes(of: value.bitPattern.littleEndian, toByteOffset: 4 * index, as: UInt32.self)
            }
            initialized = 4 * floats.count
        }
        tensors.append(Tensor(name: name, dtype: .f32, shape: shape, bytes: bytes))
    }

    /// Adds a tensor's stored little-endian bytes unchanged, for dtypes adaptc
    /// carries through without computing with them.
    public mutating func add(_ name: String, dtype: DType, shape: [Int], bytes: [UInt8]) {
        tensors.append(Tensor(name: name, dtype: dtype, shape: shape, bytes: bytes))
    }

    /// Adds every tensor of `other` under the name `rename` gives it (bytes
    /// unchanged): one file's tensors moved into another's key space.
    public mutating func add(renaming other: SafetensorsWriter, _ rename: (String) throws -> String) rethrows {
        for tensor in other.tensors {
            tensors.append(Tensor(name: try rename(tensor.name), dtype: tensor.dtype, shape: tensor.shape, bytes: tensor.bytes))
        }
    }

    /// The file's bytes. Throws `SafetensorsError` for a duplicate name, a
    /// negative dimension, or bytes that do not match dtype and shape; with no
    /// file yet, its messages name "(safetensors in memory)" instead of a path.
    public func encoded() throws -> [UInt8] {
        try encode(label: "(safetensors in memory)")
    }

    /// Writes `encoded()` atomically (`OutputFile`), tensor by tensor, so the
    /// file is never assembled in memory a second time; errors name `path`.
    public func write(to path: String) throws {
        let ordered = sortedTensors
        let stream = try SafetensorsStreamWriter(
            path: path, metadata: metadata,
            tensors: ordered.map { TensorDeclaration(name: $0.name, dtype: $0.dtype, shape: $0.shape) },
            byteCounts: ordered.map(\.bytes.count))
        for tensor in ordered {
            try tensor.bytes.withUnsafeBytes { try stream.append(tensor.name, bytes: $0) }
        }
        try stream.commit()
    }

    private var sortedTensors: [Tensor] {
        tensors.sorted { $0.name.utf8.lexicographicallyPrecedes($1.name.utf8) }
    }

    private func encode(label: String) throws -> [UInt8] {
        let ordered = sortedTensors
        let header = try Self.header(
            metadata: metadata,
            tensors: ordered.map { TensorDeclaration(name: $0.name, dtype: $0.dtype, shape: $0.shape) },
            byteCounts: ordered.map(\.bytes.count), label: label)
        var file: [UInt8] = []
        file.reserveCapacity(header.count + ordered.map(\.bytes.count).reduce(0, +))
        file.append(contentsOf: header)
        for tensor in ordered {
            file.append(contentsOf: tensor.bytes)
        }
        return file
    }

    /// The 8-byte length and the padded JSON header for tensors already sorted
    /// by name, checking what the reader would reject: duplicate or reserved
    /// names, negative dimensions, byte counts that overflow, and (when
    /// `byteCounts` is given) data that does not match dtype and shape.
    static func header(metadata: [String: String], tensors ordered: [TensorDeclaration], byteCounts: [Int]?,
                       label: String) throws -> [UInt8] {
        var names = Set<String>()
        for tensor in ordered where !names.insert(tensor.name).inserted {
            throw SafetensorsError(path: label, tensor: tensor.name, "added more than once (duplicate name)")
        }

        var members: [String] = []
        if !metadata.isEmpty {
            let pairs = metadata.sorted { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) }
                .map { "\(json($0.key)):\(json($0.value))" }
            members.append("\"__metadata__\":{\(pairs.joined(separator: ","))}")
        }
        var offset = 0
        for (index, tensor) in ordered.enumerated() {
            guard tensor.name != "__metadata__" else {
                throw SafetensorsError(path: label, tensor: tensor.name, "the name is reserved for metadata")
            }
            let byteCount = try tensor.byteCount(label: label)
            if let given = byteCounts?[index], given != byteCount {
                throw SafetensorsError(
                    path: label, tensor: tensor.name,
                    "\(given) bytes given, but \(tensor.dtype.rawValue) \(tensor.shape) needs \(byteCount)"
                )
            }
            let shape = tensor.shape.map(String.init).joined(separator: ",")
            members.append(
                "\(json(tensor.name)):{\"dtype\":\"\(tensor.dtype.rawValue)\",\"shape\":[\(shape)],"
                    + "\"data_offsets\":[\(offset),\(offset + byteCount)]}")
            offset += byteCount
        }

        var header = Array("{\(members.joined(separator: ","))}".utf8)
        header.append(contentsOf: repeatElement(UInt8(ascii: " "), count: (8 - header.count % 8) % 8))
        guard UInt64(header.count) <= SafetensorsFile.maximumHeaderLength else {
            throw SafetensorsError(path: label, "header of \(header.count) bytes exceeds the limit of 100,000,000")
        }
        var file: [UInt8] = []
        file.reserveCapacity(8 + header.count)
        withUnsafeBytes(of: UInt64(header.count).littleEndian) { file.append(contentsOf: $0) }
        file.append(contentsOf: header)
        return file
    }

    /// A JSON string literal: quotes, backslashes and control characters
    /// escaped, everything else as raw UTF-8 (valid JSON, and what readers expect).
    static func json(_ text: String) -> String {
        var result = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": result += "\\\""
            case "\\": result += "\\\\"
            case "\n": result += "\\n"
            case "\r": result += "\\r"
            case "\t": result += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                result += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: result.unicodeScalars.append(scalar)
            }
        }
        return result + "\""
    }
}
