import Foundation

/// A strict GGUF v3 reader for the tests only: it checks what export-gguf
/// wrote without sharing a line with the writer (it reads the format from
/// bytes, as ggml's `gguf_init_from_file` does). Any deviation — magic,
/// version, a value type, a tensor offset off the alignment or out of the
/// file, overlap, trailing bytes beyond the last tensor's padding — throws.
public struct GGUFReader {
    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    /// A metadata value as read: numbers widened, strings, arrays.
    public indirect enum Value: Equatable, CustomStringConvertible {
        case unsigned(UInt64, type: UInt32)
        case signed(Int64, type: UInt32)
        case float(Double, type: UInt32)
        case bool(Bool)
        case string(String)
        case array(elementType: UInt32, [Value])

        public var description: String {
            switch self {
            case .unsigned(let v, let t): return "u\(t):\(v)"
            case .signed(let v, let t): return "i\(t):\(v)"
            case .float(let v, let t): return "f\(t):\(v)"
            case .bool(let v): return "\(v)"
            case .string(let v): return "\"\(v)\""
            case .array(let t, let vs): return "[\(t)] \(vs)"
            }
        }
    }

    public struct Tensor {
        public var name: String
        /// ggml's `ne`: innermost first.
        public var ne: [Int]
        /// 0 = F32, 1 = F16.
        public var type: UInt32
        /// From the start of the data section.
        public var offset: Int
        public var bytes: [UInt8]

        /// The elements as Float (F32 or F16), in storage order.
        public var floats: [Float] {
            switch type {
            case 0: return stride(from: 0, to: bytes.count, by: 4).map { i in
                Float(bitPattern: UInt32(bytes[i]) | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2]) << 16 | UInt32(bytes[i + 3]) << 24)
            }
            case 1: return stride(from: 0, to: bytes.count, by: 2).map { i in
                Float(Float16(bitPattern: UInt16(bytes[i]) | UInt16(bytes[i + 1]) << 8))
            }
            default: return []
            }
        }
    }

    public var version: UInt32
    /// In file order.
    public var metadata: [(key: String, value: Value)]
    public var tensors: [Tensor]
    public var alignment: Int
    /// Where the data section starts.
    public var dataOffset: Int

    public func value(_ key: String) -> Value? { metadata.first { $0.key == key }?.value }
    public func tensor(_ name: String) -> Tensor? { tensors.first { $0.name == name } }

    private var bytes: [UInt8]
    private var position = 0

    public init(path: String) throws {
        try self.init(bytes: Array(try Data(contentsOf: URL(fileURLWithPath: path))))
    }

    public init(bytes: [UInt8]) throws {
        self.bytes = bytes
        version = 0; metadata = []; tensors = []; alignment = 32; dataOffset = 0
        guard bytes.count >= 24, Array(bytes[0..<4]) == Array("GGUF".utf8) else { throw Failure(description: "no GGUF magic") }
        position = 4
        version = try u32()
        guard version == 3 else { throw Failure(description: "version \(version), expected 3") }
        let tensorCount = try u64(), keyCount = try u64()
        guard tensorCount < 1 << 20, keyCount < 1 << 20 else { throw Failure(description: "implausible counts") }
        for _ in 0..<keyCount {
            let key = try string()
            guard !metadata.contains(where: { $0.key == key }) else { throw Failure(description: "duplicate key \(key)") }
            metadata.append((key, try value(ofType: try u32())))
        }
        if let stated = value("general.alignment") {
            guard case .unsigned(let a, type: 4) = stated, a > 0, a & (a - 1) == 0 else {
                throw Failure(description: "general.alignment must be a UInt32 power of two, is \(stated)")
            }
            alignment = Int(a)
        }
        var infos: [(String, [Int], UInt32, Int)] = []
        for _ in 0..<tensorCount {
            let name = try string()
            let dims = Int(try u32())
            guard (1...4).contains(dims) else { throw Failure(description: "\(name): \(dims) dimensions") }
            var ne: [Int] = []
            for _ in 0..<dims { ne.append(Int(try u64())) }
            let type = try u32(), offset = Int(try u64())
            guard type == 0 || type == 1 else { throw Failure(description: "\(name): type \(type), expected F32 or F16") }
            guard offset % alignment == 0 else { throw Failure(description: "\(name): offset \(offset) not aligned to \(alignment)") }
            guard !infos.contains(where: { $0.0 == name }) else { throw Failure(description: "duplicate tensor \(name)") }
            infos.append((name, ne, type, offset))
        }
        dataOffset = (position + alignment - 1) / alignment * alignment
        guard bytes[position..<min(dataOffset, bytes.count)].allSatisfy({ $0 == 0 }) else { throw Failure(description: "nonzero padding before data") }
        var expectedOffset = 0
        for (name, ne, type, offset) in infos {
            // gguf-py lays tensors out in info order, each padded to the alignment.
            guard offset == expectedOffset else { throw Failure(description: "\(name): offset \(offset), expected \(expectedOffset)") }
            let count = ne.reduce(1, *) * (type == 0 ? 4 : 2)
            let start = dataOffset + offset
            guard start + count <= bytes.count else { throw Failure(description: "\(name): data past the end of the file") }
            tensors.append(Tensor(name: name, ne: ne, type: type, offset: offset, bytes: Array(bytes[start..<(start + count)])))
            expectedOffset = offset + (count + alignment - 1) / alignment * alignment
        }
        guard bytes.count == dataOffset + expectedOffset else {
            throw Failure(description: "file is \(bytes.count) bytes, the tensors end at \(dataOffset + expectedOffset)")
        }
    }

    private mutating func take(_ count: Int) throws -> ArraySlice<UInt8> {
        guard count >= 0, position + count <= bytes.count else { throw Failure(description: "truncated at \(position)") }
        defer { position += count }
        return bytes[position..<(position + count)]
    }

    private mutating func integer(_ size: Int) throws -> UInt64 {
        try take(size).reversed().reduce(0) { $0 << 8 | UInt64($1) }
    }

    private mutating func u32() throws -> UInt32 { UInt32(try integer(4)) }
    private mutating func u64() throws -> UInt64 { try integer(8) }

    private mutating func string() throws -> String {
        let count = try u64()
        guard count < 1 << 24 else { throw Failure(description: "string of \(count) bytes") }
        guard let text = String(validating: try take(Int(count)), as: UTF8.self) else { throw Failure(description: "string not UTF-8") }
        return text
    }

    private mutating func value(ofType type: UInt32) throws -> Value {
        switch type {
        case 0, 2, 4, 10: return .unsigned(try integer([0: 1, 2: 2, 4: 4, 10: 8][type]!), type: type)
        case 1, 3, 5, 11:
            let size = [1: 1, 3: 2, 5: 4, 11: 8][type]!
            let raw = try integer(size), shift = UInt64(64 - 8 * size)
            return .signed(Int64(bitPattern: raw << shift) >> Int64(shift), type: type)
        case 6: return .float(Double(Float(bitPattern: try u32())), type: 6)
        case 12: return .float(Double(bitPattern: try u64()), type: 12)
        case 7:
            let raw = try integer(1)
            guard raw <= 1 else { throw Failure(description: "bool \(raw)") }
            return .bool(raw == 1)
        case 8: return .string(try string())
        case 9:
            let elementType = try u32(), count = try u64()
            guard count < 1 << 24 else { throw Failure(description: "array of \(count)") }
            return .array(elementType: elementType, try (0..<count).map { _ in try value(ofType: elementType) })
        default: throw Failure(description: "value type \(type)")
        }
    }
}
