/// A typed GGUF metadata value (GGUF v3, the value types of ggml's `gguf.h`).
/// Arrays carry their element type, so an empty array is still typed.
public indirect enum GGUFValue: Equatable, Sendable {
    case uint8(UInt8), int8(Int8), uint16(UInt16), int16(Int16), uint32(UInt32), int32(Int32)
    case float32(Float), bool(Bool), string(String)
    case array(GGUFValueType, [GGUFValue])
    case uint64(UInt64), int64(Int64), float64(Double)

    public var type: GGUFValueType {
        switch self {
        case .uint8: return .uint8
        case .int8: return .int8
        case .uint16: return .uint16
        case .int16: return .int16
        case .uint32: return .uint32
        case .int32: return .int32
        case .float32: return .float32
        case .bool: return .bool
        case .string: return .string
        case .array: return .array
        case .uint64: return .uint64
        case .int64: return .int64
        case .float64: return .float64
        }
    }
}

/// The numbers GGUF stores before each value (`gguf_type`).
public enum GGUFValueType: UInt32, Sendable {
    case uint8 = 0, int8, uint16, int16, uint32, int32, float32, bool, string, array, uint64, int64, float64
}

/// The tensor element types this writer produces (`ggml_type`: F32 = 0, F16 = 1).
public enum GGMLType: UInt32, Sendable {
    case f32 = 0, f16 = 1

    public var itemSize: Int { self == .f32 ? 4 : 2 }
}

/// Writes a GGUF v3 file (the format llama.cpp reads): the header (magic
/// `GGUF`, version 3, tensor count, key/value count, all little-endian), the
/// key/values in the order they were added, one info per tensor (name, its
/// dimensions innermost first — ggml's `ne`, the reverse of a row-major
/// shape — its type and its offset in the data section), padding to the
/// alignment, then each tensor's bytes padded to the alignment as gguf-py pads
/// them. As in gguf-py, `general.alignment` is a key like any other: a
/// writer with another alignment than the default 32 must carry it.
public struct GGUFWriter: Sendable {
    public static let version: UInt32 = 3
    public let alignment: Int
    public private(set) var metadata: [(key: String, value: GGUFValue)] = []
    public private(set) var tensors: [(name: String, shape: [Int], type: GGMLType, bytes: [UInt8])] = []

    public init(alignment: Int = 32) {
        precondition(alignment > 0 && alignment & (alignment - 1) == 0, "GGUF alignment must be a power of two")
        self.alignment = alignment
    }

    /// One key/value; a key is written once (the caller decides the order).
    public mutating func add(_ key: String, _ value: GGUFValue) {
        precondition(!metadata.contains { $0.key == key }, "GGUF key \(key) added twice")
        metadata.append((key, value))
    }

    /// A tensor of `shape` (row-major, as safetensors and PyTorch give it)
    /// whose little-endian element bytes are `bytes`.
    public mutating func add(tensor name: String, shape: [Int], type: GGMLType, bytes: [UInt8]) {
        precondition(!tensors.contains { $0.name == name }, "GGUF tensor \(name) added twice")
        precondition(bytes.count == shape.reduce(1, *) * type.itemSize, "GGUF tensor \(name): byte count does not match its shape")
        tensors.append((name, shape, type, bytes))
    }

    public func encoded() -> [UInt8] {
        precondition(alignment == 32 || metadata.contains { $0.key == "general.alignment" && $0.value == .uint32(UInt32(alignment)) },
                     "a GGUF alignment other than 32 must be stated in general.alignment")
        var out: [UInt8] = Array("GGUF".utf8)
        append(Self.version, to: &out)
        append(UInt64(tensors.count), to: &out)
        append(UInt64(metadata.count), to: &out)
        for (key, value) in metadata {
            appendString(key, to: &out)
            append(value.type.rawValue, to: &out)
            appendValue(value, to: &out)
        }
        var offset = 0
        for tensor in tensors {
            appendString(tensor.name, to: &out)
            append(UInt32(tensor.shape.count), to: &out)
            for extent in tensor.shape.reversed() { append(UInt64(extent), to: &out) }
            append(tensor.type.rawValue, to: &out)
            append(UInt64(offset), to: &out)
            offset += padded(tensor.bytes.count)
        }
        pad(&out)
        for tensor in tensors {
            out += tensor.bytes
            pad(&out)
        }
        return out
    }

    /// Written to a temporary file and renamed (`AtomicFile`).
    public func write(to path: String) throws {
        try AtomicFile.write(encoded(), to: path)
    }

    private func padded(_ count: Int) -> Int { (count + alignment - 1) / alignment * alignment }

    private func pad(_ out: inout [UInt8]) {
        out += [UInt8](repeating: 0, count: padded(out.count) - out.count)
    }

    private func append<T: FixedWidthInteger>(_ value: T, to out: inout [UInt8]) {
        withUnsafeBytes(of: value.littleEndian) { out += $0 }
    }

    /// A GGUF string: its UTF-8 length as a UInt64, then the bytes (no terminator).
    private func appendString(_ string: String, to out: inout [UInt8]) {
        append(UInt64(string.utf8.count), to: &out)
        out += string.utf8
    }

    /// The value alone; arrays hold their element type and count, then elements without types.
    private func appendValue(_ value: GGUFValue, to out: inout [UInt8]) {
        switch value {
        case .uint8(let v): append(v, to: &out)
        case .int8(let v): append(v, to: &out)
        case .uint16(let v): append(v, to: &out)
        case .int16(let v): append(v, to: &out)
        case .uint32(let v): append(v, to: &out)
        case .int32(let v): append(v, to: &out)
        case .float32(let v): append(v.bitPattern, to: &out)
        case .bool(let v): out.append(v ? 1 : 0)
        case .string(let v): appendString(v, to: &out)
        case .uint64(let v): append(v, to: &out)
        case .int64(let v): append(v, to: &out)
        case .float64(let v): append(v.bitPattern, to: &out)
        case .array(let elementType, let elements):
            precondition(elements.allSatisfy { $0.type == elementType }, "GGUF array elements must all be \(elementType)")
            append(elementType.rawValue, to: &out)
            append(UInt64(elements.count), to: &out)
            for element in elements { appendValue(element, to: &out) }
        }
    }
}
