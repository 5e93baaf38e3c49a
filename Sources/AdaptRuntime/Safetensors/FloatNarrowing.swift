/// Float32 → F16 / BF16 with round-to-nearest-even, so a merged checkpoint keeps
/// its tensors' dtypes (DESIGN §5: "other tensors and dtypes unchanged").
public enum FloatNarrowing {
    /// The BF16 bits of `value`, rounded to nearest even.
    public static func bfloat16Bits(_ value: Float) -> UInt16 {
        let bits = value.bitPattern
        if value.isNaN { return UInt16(bits >> 16) | 0x40 }
        let rounding = 0x7FFF + ((bits >> 16) & 1)
        return UInt16((bits &+ rounding) >> 16)
    }

    /// The IEEE half-precision bits of `value`, rounded to nearest even.
    public static func float16Bits(_ value: Float) -> UInt16 {
        Float16(value).bitPattern
    }

    /// Whether `value` stays finite once stored as `dtype`.
    public static func isFinite(_ value: Float, as dtype: DType) -> Bool {
        switch dtype {
        case .f16: return Float16(value).isFinite
        case .bf16: return bfloat16Bits(value) & 0x7F80 != 0x7F80
        default: return value.isFinite
        }
    }

    /// Little-endian bytes of `values` in `dtype` (F32, F16 or BF16).
    public static func bytes(_ values: [Float], as dtype: DType) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(values.count * dtype.itemSize)
        for v in values {
            switch dtype {
            case .f16, .bf16:
                let h = dtype == .f16 ? float16Bits(v) : bfloat16Bits(v)
                out.append(UInt8(h & 0xFF)); out.append(UInt8(h >> 8))
            default:
                let b = v.bitPattern
                out.append(UInt8(b & 0xFF)); out.append(UInt8((b >> 8) & 0xFF))
                out.append(UInt8((b >> 16) & 0xFF)); out.append(UInt8(b >> 24))
            }
        }
        return out
    }
}
