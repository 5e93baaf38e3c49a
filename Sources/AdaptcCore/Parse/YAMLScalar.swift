import Yams

/// A scalar read with the YAML 1.2 core schema (DESIGN §5 says YAML 1.2), not
/// Yams' default YAML 1.1 resolver: `yes`/`no`/`on`/`off` are strings, `012` is
/// twelve, and there are no sexagesimal numbers. Quoted and block scalars are
/// always strings, so `"8"` is not a number.
enum YAMLScalar: Equatable {
    case null
    case bool(Bool)
    case int(Int)
    /// An integer literal that does not fit in 64 bits (`99999999999999999999999`).
    case intOutOfRange(String)
    case float(Double)
    case string(String)

    init(_ scalar: Node.Scalar) {
        let text = scalar.string
        if scalar.tag.rawValue == Tag.Name.str.rawValue || scalar.style != .plain {
            self = .string(text)
            return
        }
        switch text {
        case "", "~", "null", "Null", "NULL": self = .null
        case "true", "True", "TRUE": self = .bool(true)
        case "false", "False", "FALSE": self = .bool(false)
        case ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF": self = .float(.infinity)
        case "-.inf", "-.Inf", "-.INF": self = .float(-.infinity)
        case ".nan", ".NaN", ".NAN": self = .float(.nan)
        default:
            if let integer = YAMLScalar.integer(text) {
                self = integer
            } else if YAMLScalar.isFloatLiteral(text), let value = Double(text) {
                self = .float(value)
            } else {
                self = .string(text)
            }
        }
    }

    /// `[-+]?[0-9]+`, `0o[0-7]+`, `0x[0-9a-fA-F]+` (YAML 1.2 core schema, 10.3.2).
    private static func integer(_ text: String) -> YAMLScalar? {
        var digits = Substring(text)
        var negative = false
        var radix = 10
        if text.hasPrefix("0o") || text.hasPrefix("0x") {
            radix = text.hasPrefix("0o") ? 8 : 16
            digits = digits.dropFirst(2)
        } else if let sign = digits.first, sign == "-" || sign == "+" {
            negative = sign == "-"
            digits = digits.dropFirst()
        }
        guard !digits.isEmpty, digits.allSatisfy({ $0.isASCII && $0.isHexDigit }),
              radix == 16 || digits.allSatisfy({ $0.isNumber }) else { return nil }
        if radix == 8, !digits.allSatisfy({ ("0"..."7").contains($0) }) { return nil }
        // Parse the magnitude as UInt64 so that Int.min still reads back.
        guard let magnitude = UInt64(digits, radix: radix) else { return .intOutOfRange(text) }
        if negative {
            guard magnitude <= UInt64(Int.max) + 1 else { return .intOutOfRange(text) }
            return .int(magnitude == UInt64(Int.max) + 1 ? Int.min : -Int(magnitude))
        }
        guard magnitude <= UInt64(Int.max) else { return .intOutOfRange(text) }
        return .int(Int(magnitude))
    }

    /// `[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?` (YAML 1.2 core schema).
    private static func isFloatLiteral(_ text: String) -> Bool {
        var rest = Substring(text)
        if let sign = rest.first, sign == "-" || sign == "+" { rest = rest.dropFirst() }
        let integerDigits = rest.prefix { $0.isASCII && $0.isNumber }
        rest = rest.dropFirst(integerDigits.count)
        var fractionDigits = Substring()
        if rest.first == "." {
            rest = rest.dropFirst()
            fractionDigits = rest.prefix { $0.isASCII && $0.isNumber }
            rest = rest.dropFirst(fractionDigits.count)
        }
        guard !integerDigits.isEmpty || !fractionDigits.isEmpty else { return false }
        if let e = rest.first, e == "e" || e == "E" {
            rest = rest.dropFirst()
            if let sign = rest.first, sign == "-" || sign == "+" { rest = rest.dropFirst() }
            let exponentDigits = rest.prefix { $0.isASCII && $0.isNumber }
            guard !exponentDigits.isEmpty else { return false }
            rest = rest.dropFirst(exponentDigits.count)
        }
        return rest.isEmpty
    }

    /// How a message names what was found (`the string 'abc'`, `the number 1e300`),
    /// quoting numbers as written rather than as Double prints them.
    func foundDescription(writtenAs text: String) -> String {
        switch self {
        case .null: return "nothing (null)"
        case .bool(let b): return "the boolean \(b)"
        case .int, .intOutOfRange: return "the integer \(text)"
        case .float: return "the number \(text)"
        case .string(let s): return "the string '\(s)'"
        }
    }
}
