// MARK: - Strict JSON

/// JSON as the header holds it. Objects keep every member in order, duplicates
/// included, so the checks above can name the duplicated key. Numbers keep
/// their text, so integers of any size are judged exactly, never via `Double`.
/// Public because other JSON files adaptc reads (a sharded checkpoint's index,
/// PEFT's adapter_config.json) need the same strictness and member order.
public enum HeaderJSON: Sendable {
    case object([(key: String, value: HeaderJSON)])
    case array([HeaderJSON])
    case string(String)
    case number(String)
    case bool(Bool)
    case null

    /// A short rendering for error messages: long strings and numbers are cut,
    /// so a hostile header cannot make a megabyte-long message.
    public var summary: String {
        switch self {
        case .object: "an object"
        case .array: "an array"
        case .string(let text): SafetensorsError.quoted(Self.shortened(text))
        case .number(let lexeme): Self.shortened(lexeme)
        case .bool(let value): "\(value)"
        case .null: "null"
        }
    }

    private static func shortened(_ text: String) -> String {
        text.count <= 40 ? text : String(text.prefix(40)) + "…"
    }
}

/// An RFC 8259 parser over the header bytes. Foundation's `JSONSerialization`
/// is not used because it silently keeps one of two duplicate keys, and
/// duplicates must be rejected (DESIGN §5). Input is valid UTF-8 already.
public struct HeaderJSONParser {
    /// Malformed JSON in a safetensors header.
    public struct SyntaxError: Error, Sendable {
        /// What is wrong.
        public var detail: String
        /// Byte offset in the header where it was found.
        public var offset: Int
    }

    /// Parses a whole text (a Swift string is valid UTF-8 already).
    public static func parse(text: String) throws(SyntaxError) -> HeaderJSON {
        var text = text
        var result: Result<HeaderJSON, SyntaxError> = .success(.null)
        text.withUTF8 { buffer in
            do throws(SyntaxError) { result = .success(try parse(UnsafeRawBufferPointer(buffer))) } catch { result = .failure(error) }
        }
        return try result.get()
    }

    /// A real header nests three deep; the limit keeps hostile input such as
    /// 10,000 `[` from exhausting the stack.
    static let maximumDepth = 64

    private let bytes: UnsafeRawBufferPointer
    private var position = 0

    private init(_ bytes: UnsafeRawBufferPointer) {
        self.bytes = bytes
    }

    /// One JSON value, optionally surrounded by whitespace (writers pad with spaces).
    static func parse(_ bytes: UnsafeRawBufferPointer) throws(SyntaxError) -> HeaderJSON {
        var parser = HeaderJSONParser(bytes)
        parser.skipWhitespace()
        let value = try parser.parseValue(depth: 1)
        parser.skipWhitespace()
        guard parser.position == bytes.count else {
            throw parser.error("trailing characters after the JSON value")
        }
        return value
    }

    private func error(_ detail: String) -> SyntaxError {
        SyntaxError(detail: detail, offset: position)
    }

    private var current: UInt8? {
        position < bytes.count ? bytes[position] : nil
    }

    private mutating func skipWhitespace() {
        while let byte = current, byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D {
            position += 1
        }
    }

    private mutating func expect(_ character: Unicode.Scalar) throws(SyntaxError) {
        guard current == UInt8(ascii: character) else {
            throw error(current == nil ? "expected '\(character)' but the header ended" : "expected '\(character)'")
        }
        position += 1
    }

    private mutating func parseValue(depth: Int) throws(SyntaxError) -> HeaderJSON {
        guard let byte = current else { throw error("expected a value but the header ended") }
        switch byte {
        case UInt8(ascii: "{"): return try parseObject(depth: depth)
        case UInt8(ascii: "["): return try parseArray(depth: depth)
        case UInt8(ascii: "\""): return .string(try parseString())
        case UInt8(ascii: "t"):
            try parseLiteral("true")
            return .bool(true)
        case UInt8(ascii: "f"):
            try parseLiteral("false")
            return .bool(false)
        case UInt8(ascii: "n"):
            try parseLiteral("null")
            return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number(try parseNumber())
        default: throw error("unexpected character where a value should start")
        }
    }

    private mutating func enter(_ depth: Int) throws(SyntaxError) {
        guard depth <= Self.maximumDepth else {
            throw error("nesting deeper than \(Self.maximumDepth) levels")
        }
        position += 1
        skipWhitespace()
    }

    private mutating func parseObject(depth: Int) throws(SyntaxError) -> HeaderJSON {
        try enter(depth)
        var members: [(key: String, value: HeaderJSON)] = []
        if current == UInt8(ascii: "}") {
            position += 1
            return .object(members)
        }
        while true {
            guard current == UInt8(ascii: "\"") else { throw error("expected a string key") }
            let key = try parseString()
            skipWhitespace()
            try expect(":")
            skipWhitespace()
            members.append((key, try parseValue(depth: depth + 1)))
            skipWhitespace()
            if current == UInt8(ascii: ",") {
                position += 1
                skipWhitespace()
                continue
            }
            try expect("}")
            return .object(members)
        }
    }

    private mutating func parseArray(depth: Int) throws(SyntaxError) -> HeaderJSON {
        try enter(depth)
        var elements: [HeaderJSON] = []
        if current == UInt8(ascii: "]") {
            position += 1
            return .array(elements)
        }
        while true {
            elements.append(try parseValue(depth: depth + 1))
            skipWhitespace()
            if current == UInt8(ascii: ",") {
                position += 1
                skipWhitespace()
                continue
            }
            try expect("]")
            return .array(elements)
        }
    }

    private mutating func parseLiteral(_ word: StaticString) throws(SyntaxError) {
        let end = position + word.utf8CodeUnitCount
        guard end <= bytes.count,
            word.withUTF8Buffer({ $0.elementsEqual(bytes[position..<end]) })
        else { throw error("invalid literal") }
        position = end
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`, returned as its text.
    private mutating func parseNumber() throws(SyntaxError) -> String {
        let start = position
        if current == UInt8(ascii: "-") { position += 1 }
        if current == UInt8(ascii: "0") {
            position += 1
        } else {
            try digits()
        }
        if current == UInt8(ascii: ".") {
            position += 1
            try digits()
        }
        if current == UInt8(ascii: "e") || current == UInt8(ascii: "E") {
            position += 1
            if current == UInt8(ascii: "+") || current == UInt8(ascii: "-") { position += 1 }
            try digits()
        }
        return String(decoding: bytes[start..<position], as: UTF8.self)
    }

    private mutating func digits() throws(SyntaxError) {
        let start = position
        while let byte = current, byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") {
            position += 1
        }
        guard position > start else { throw error("invalid number") }
    }

    private mutating func parseString() throws(SyntaxError) -> String {
        position += 1  // opening quote
        var utf8: [UInt8] = []
        while true {
            guard let byte = current else { throw error("unterminated string") }
            switch byte {
            case UInt8(ascii: "\""):
                position += 1
                return String(decoding: utf8, as: UTF8.self)
            case UInt8(ascii: "\\"):
                position += 1
                try parseEscape(into: &utf8)
            case 0..<0x20:
                throw error("unescaped control character in a string")
            default:
                utf8.append(byte)
                position += 1
            }
        }
    }

    private mutating func parseEscape(into utf8: inout [UInt8]) throws(SyntaxError) {
        guard let byte = current else { throw error("unterminated string") }
        position += 1
        switch byte {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): utf8.append(byte)
        case UInt8(ascii: "b"): utf8.append(0x08)
        case UInt8(ascii: "f"): utf8.append(0x0C)
        case UInt8(ascii: "n"): utf8.append(0x0A)
        case UInt8(ascii: "r"): utf8.append(0x0D)
        case UInt8(ascii: "t"): utf8.append(0x09)
        case UInt8(ascii: "u"):
            var value = try hexQuad()
            if 0xD800...0xDBFF ~= value {
                // A high surrogate must be followed by an escaped low one (RFC 8259 §7).
                guard current == UInt8(ascii: "\\") else { throw error("unpaired surrogate in \\u escape") }
                position += 1
                guard current == UInt8(ascii: "u") else { throw error("unpaired surrogate in \\u escape") }
                position += 1
                let low = try hexQuad()
                guard 0xDC00...0xDFFF ~= low else { throw error("unpaired surrogate in \\u escape") }
                value = 0x10000 + ((value - 0xD800) << 10) + (low - 0xDC00)
            } else if 0xDC00...0xDFFF ~= value {
                throw error("unpaired surrogate in \\u escape")
            }
            // Surrogates are handled above, so every remaining value is a scalar.
            UTF8.encode(Unicode.Scalar(value)!) { utf8.append($0) }
        default:
            throw error("invalid escape")
        }
    }

    private mutating func hexQuad() throws(SyntaxError) -> UInt32 {
        var value: UInt32 = 0
        for _ in 0..<4 {
            guard let byte = current, let digit = Self.hexValue(byte) else {
                throw error("invalid \\u escape")
            }
            value = value << 4 | digit
            position += 1
        }
        return value
    }

    private static func hexValue(_ byte: UInt8) -> UInt32? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): UInt32(byte - UInt8(ascii: "0"))
        case UInt8(ascii: "a")...UInt8(ascii: "f"): UInt32(byte - UInt8(ascii: "a") + 10)
        case UInt8(ascii: "A")...UInt8(ascii: "F"): UInt32(byte - UInt8(ascii: "A") + 10)
        default: nil
        }
    }
}
