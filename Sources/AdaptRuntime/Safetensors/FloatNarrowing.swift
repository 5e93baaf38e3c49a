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
        [UInt8](unsafeUninitializedCapacity: values.count * dtype.itemSize) { buffer, initialized in
            values.withUnsafeBufferPointer { _ = narrow($0, as: dtype, into: UnsafeMutableRawBufferPointer(buffer)) }
            initialized = values.count * dtype.itemSize
        }
    }

    /// Writes `values` as `dtype` into `bytes` (at least count × itemSize) and
    /// returns the first index whose stored value is not finite, if any.
    public static func narrow(_ values: UnsafeBufferPointer<Float>, as dtype: DType,
                              into bytes: UnsafeMutableRawBufferPointer) -> Int? {
        var firstBad: Int?
        switch dtype {
        case .bf16:
            for (i, v) in values.enumerated() {
                let h = bfloat16Bits(v)
                bytes.storeBytes(of: h.littleEndian, toByteOffset: 2 * i, as: UInt16.self)
                if h & 0x7F80 == 0x7F80, firstBad == nil { firstBad = i }
            }
        case .f16:
            for (i, v) in values.enumerated() {
                let h = Float16(v)
                bytes.storeBytes(of: h.bitPattern.littleEndian, toByteOffset: 2 * i, as: UInt16.self)
                if !h.isFinite, firstBad == nil { firstBad = i }
            }
        default:
            for (i, v) in values.enumerated() {
                bytes.storeBytes(of: v.bitPattern.littleEndian, toByteOffset: 4 * i, as: UInt32.self)
                if !v.isFinite, firstBad == nil { firstBad = i }
            }
        }
        return firstBad
    }
}
