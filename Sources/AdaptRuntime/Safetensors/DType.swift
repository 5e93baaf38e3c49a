/// The element types a safetensors file may declare, spelled as in its header
/// (DESIGN §5). Any other spelling makes the file invalid, so this list is closed.
public enum DType: String, CaseIterable, Sendable {
    case f64 = "F64"
    case f32 = "F32"
    case f16 = "F16"
    case bf16 = "BF16"
    case i64 = "I64"
    case i32 = "I32"
    case i16 = "I16"
    case i8 = "I8"
    case u8 = "U8"
    case bool = "BOOL"
    case f8e4m3 = "F8_E4M3"
    case f8e5m2 = "F8_E5M2"

    /// Bytes per element in the data section.
    public var itemSize: Int {
        switch self {
        case .f64, .i64: 8
        case .f32, .i32: 4
        case .f16, .bf16, .i16: 2
        case .i8, .u8, .bool, .f8e4m3, .f8e5m2: 1
        }
    }

    /// Whether adaptc computes with tensors of this type (widened to F32);
    /// tensors of other types are only carried through unchanged.
    public var isFloatingComputable: Bool {
        switch self {
        case .f32, .f16, .bf16: true
        default: false
        }
    }
}

extension DType {
    /// IEEE 754 binary16 → binary32, exact for every input: a plain bit
    /// rearrangement, so it does not depend on the platform having `Float16`.
    static func widenF16(_ bits: UInt16) -> Float {
        let sign = UInt32(bits & 0x8000) << 16
        let exponent = UInt32(bits >> 10) & 0x1F
        var mantissa = UInt32(bits) & 0x3FF
        switch exponent {
        case 0 where mantissa == 0:
            return Float(bitPattern: sign)
        case 0:
            // Subnormal (mantissa · 2⁻²⁴): shift until the implicit leading 1
            // appears; every binary16 subnormal is a normal binary32.
            var rebiased: UInt32 = 127 - 15 + 1
            while mantissa & 0x400 == 0 {
                mantissa <<= 1
                rebiased -= 1
            }
            return Float(bitPattern: sign | rebiased << 23 | (mantissa & 0x3FF) << 13)
        case 0x1F:
            // Inf keeps a zero mantissa; NaN keeps its payload (so stays NaN).
            return Float(bitPattern: sign | 0x7F80_0000 | mantissa << 13)
        default:
            return Float(bitPattern: sign | (exponent + 127 - 15) << 23 | mantissa << 13)
        }
    }

    /// bfloat16 → binary32: bfloat16 is the top half of a binary32.
    static func widenBF16(_ bits: UInt16) -> Float {
        Float(bitPattern: UInt32(bits) << 16)
    }
}
