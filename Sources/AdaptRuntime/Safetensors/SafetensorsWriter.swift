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

    /// The file's bytes. Throws `SafetensorsError` for a duplicate name, a
    /// negative dimension, or bytes that do not match dtype and shape; with no
    /// file yet, its messages name "(safetensors in memory)" instead of a path.
    public func encoded() throws -> [UInt8] {
        try encode(label: "(safetensors in memory)")
    }

    /// Writes `encoded()` atomically (`AtomicFile`); errors name `path`.
    public func write(to path: String) throws {
        try AtomicFile.write(encode(label: path), to: path)
    }

    private func encode(label: String) throws -> [UInt8] {
        let ordered = tensors.sorted { $0.name.utf8.lexicographicallyPrecedes($1.name.utf8) }
        let (header, dataSize) = try Self.header(
            metadata: metadata, tensors: ordered.map { ($0.name, $0.dtype, $0.shape) }, label: label)
        for tensor in ordered {
            let byteCount = try Self.expectedByteCount(tensor.name, tensor.dtype, tensor.shape, label: label)
            guard tensor.bytes.count == byteCount else {
                throw SafetensorsError(
                    path: label, tensor: tensor.name,
                    "\(tensor.bytes.count) bytes given, but \(tensor.dtype.rawValue) \(tensor.shape) needs \(byteCount)"
                )
            }
        }
        var file: [UInt8] = []
        file.reserveCapacity(header.count + dataSize)
        file.append(contentsOf: header)
        for tensor in ordered {
            file.append(contentsOf: tensor.bytes)
        }
        return file
    }

    /// The 8-byte length and the padded JSON header for tensors already in
    /// name order (data in that order follows it), and the data section's size.
    /// Shared with `SafetensorsStreamWriter`, so both write identical files.
    static func header(metadata: [String: String], tensors ordered: [(name: String, dtype: DType, shape: [Int])],
                       label: String) throws -> (bytes: [UInt8], dataSize: Int) {
        var names = Set<String>()
        for tensor in ordered where !names.insert(tensor.name).inserted {
            throw SafetensorsError(path: label, tensor: tensor.name, "added more than once (duplicate name)")
        }
        var members: [String] = []
        if !metadata.isEmpty {
            let pairs = metadata.sorted { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) }
                .map { "\(Self.json($0.key)):\(Self.json($0.value))" }
            members.append("\"__metadata__\":{\(pairs.joined(separator: ","))}")
        }
        var offset = 0
        for tensor in ordered {
            guard tensor.name != "__metadata__" else {
                throw SafetensorsError(path: label, tensor: tensor.name, "the name is reserved for metadata")
            }
            let byteCount = try expectedByteCount(tensor.name, tensor.dtype, tensor.shape, label: label)
            let shape = tensor.shape.map(String.init).joined(separator: ",")
            members.append(
                "\(Self.json(tensor.name)):{\"dtype\":\"\(tensor.dtype.rawValue)\",\"shape\":[\(shape)],"
                    + "\"data_offsets\":[\(offset),\(offset + byteCount)]}")
            offset += byteCount
        }

        var header = Array("{\(members.joined(separator: ","))}".utf8)
        header.append(contentsOf: repeatElement(UInt8(ascii: " "), count: (8 - header.count % 8) % 8))
        guard UInt64(header.count) <= SafetensorsFile.maximumHeaderLength else {
            throw SafetensorsError(path: label, "header of \(header.count) bytes exceeds the limit of 100,000,000")
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(8 + header.count)
        withUnsafeBytes(of: UInt64(header.count).littleEndian) { bytes.append(contentsOf: $0) }
        bytes.append(contentsOf: header)
        return (bytes, offset)
    }

    /// numel × itemsize, rejecting what the reader would reject.
    static func expectedByteCount(_ name: String, _ dtype: DType, _ shape: [Int], label: String) throws -> Int {
        if let negative = shape.first(where: { $0 < 0 }) {
            throw SafetensorsError(
                path: label, tensor: name, "shape \(shape) has negative dimension \(negative)")
        }
        var count = dtype.itemSize
        for dimension in shape where dimension != 0 {
            let (product, overflow) = count.multipliedReportingOverflow(by: dimension)
            guard !overflow else {
                throw SafetensorsError(
                    path: label, tensor: name,
                    "\(dtype.rawValue) \(shape) overflows the byte count")
            }
            count = product
        }
        return shape.contains(0) ? 0 : count
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
