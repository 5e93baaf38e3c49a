/// Blockwise absmax quantisation of a row-major weight W [rows, columns]
/// (DESIGN §3, LoftQ's `quantiser: {bits, group, kind}`), the way a quantised
/// base model stores it: each row is cut into groups of `group` consecutive
/// columns (along `in`), and each group keeps one float32 scale and one code
/// per element. `dequantise` gives what the quantised model computes with:
/// `level(code) · scale`.
///
/// - `symmetric` (bits 4 or 8): q = 2^(b−1) − 1 (7 or 127), scale = absmax / q,
///   code = round-half-to-even(x · q / absmax) ∈ [−q, q], level(code) = code.
///   This is LLM.int8's absmax quantisation (bitsandbytes' `kInt8VectorQuant`
///   rounds `x · 127/absmax` with `__float2int_rn`, nearest even) applied per
///   group. The quotient is formed in float64, where x·q is exact and one
///   division decides the rounding correctly, so a tie is a true tie of the
///   real value (never an artefact of a float32 reciprocal).
/// - `nf4` (bits 4): QLoRA's NormalFloat (Dettmers et al. 2023), exactly as
///   bitsandbytes computes it: n = x · (1/absmax) in float32, code = the number
///   of the 15 decision thresholds (bitsandbytes `dQuantizeNF4`, midpoints of
///   adjacent levels) that n is strictly above — so a value on a threshold goes
///   to the lower level — and scale = absmax; level(code) = `nf4Levels[code]`.
///
/// A group that is all zeros has scale 0 and the code of level 0 (0 for
/// symmetric, 7 for nf4), so it dequantises to exact zeros (bitsandbytes gets
/// the same zeros by way of 0·(1/0) = NaN → code 0 → −1 · 0). NaN or ±Inf in W
/// is refused: no quantised model can hold it.
public struct Quantiser: Sendable, Equatable {
    public enum Kind: String, Sendable, CaseIterable { case symmetric, nf4 }

    public var bits: Int
    public var group: Int
    public var kind: Kind

    public init(bits: Int, group: Int, kind: Kind) {
        precondition(bits == 4 || bits == 8, "bits must be 4 or 8")
        precondition(group >= 1, "group must be positive")
        precondition(kind == .symmetric || bits == 4, "nf4 has 16 levels: 4 bits")
        self.bits = bits
        self.group = group
        self.kind = kind
    }

    /// W as codes and per-group scales.
    public struct Quantised: Sendable, Equatable {
        public var rows: Int
        public var columns: Int
        /// Row-major [rows, columns]: the signed code for symmetric, the index
        /// 0...15 into `nf4Levels` for nf4.
        public var codes: [Int8]
        /// Row-major [rows, columns / group].
        public var scales: [Float]
    }

    /// The first non-finite element found (row-major index).
    public struct NonFiniteValue: Error, CustomStringConvertible {
        public var index: Int
        public var value: Float
        public var description: String { "\(value.isNaN ? "NaN" : "Inf") at element \(index), which cannot be quantised" }
    }

    /// The largest code magnitude of the symmetric kind: 2^(b−1) − 1.
    public var symmetricMaximum: Int { (1 << (bits - 1)) - 1 }

    /// QLoRA's 16 NormalFloat levels, bitsandbytes' table (`get_4bit_type("nf4")`,
    /// `dDequantizeNF4`): `create_normal_map(offset: 0.9677083)`, quantiles of
    /// N(0, 1) normalised into [−1, 1], with an exact zero and one more positive level.
    public static let nf4Levels: [Float] = [
        -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
        -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
        0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
        0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
    ]

    /// bitsandbytes' CUDA kernel `dQuantizeNF4` decision thresholds, ascending,
    /// as its float literals: within one float32 ulp of the midpoints of
    /// adjacent levels. (A Swift Float literal is rounded from the decimal
    /// directly, as a C compiler rounds `0.0397…f`. bitsandbytes' CPU backend
    /// instead uses the float32 midpoints `(l_i + l_{i+1}) / 2`, one ulp away
    /// for 4 of the 15, so the two backends disagree on exactly those 4 float32
    /// values of x/absmax; QLoRA runs the CUDA kernel, and so does this.)
    public static let nf4Thresholds: [Float] = [
        -0.8480964004993439, -0.6106329262256622, -0.4599952697753906, -0.33967943489551544,
        -0.23460740596055984, -0.13791173323988914, -0.045525018125772476, 0.03979014977812767,
        0.1202552504837513, 0.2035212516784668, 0.2920137718319893, 0.3893125355243683,
        0.5016634166240692, 0.6427869200706482, 0.8614784181118011,
    ]

    /// Elements a parallel chunk should hold at least: below this TBB's
    /// scheduling costs more than the loop.
    static let grainElements = 1 << 15

    public func quantise(_ w: UnsafeBufferPointer<Float>, rows: Int, columns: Int, threads: Int = 1) throws -> Quantised {
        precondition(w.count == rows * columns && columns % group == 0, "columns must be a multiple of the group")
        let groupsPerRow = columns / group
        var codes = [Int8](repeating: 0, count: rows * columns)
        var scales = [Float](repeating: 0, count: rows * groupsPerRow)
        var firstBad = [NonFiniteValue?](repeating: nil, count: rows)
        let grain = max(1, Self.grainElements / max(columns, 1))
        codes.withUnsafeMutableBufferPointer { codes in
            scales.withUnsafeMutableBufferPointer { scales in
                firstBad.withUnsafeMutableBufferPointer { firstBad in
                    Parallel.forEach(rows, grain: grain, threads: threads) { range in
                        for row in range {
                            for g in 0..<groupsPerRow {
                                let start = row * columns + g * group
                                if let bad = quantiseGroup(w.baseAddress! + start, start: start, codes: codes.baseAddress! + start,
                                                           scale: &scales[row * groupsPerRow + g]) {
                                    firstBad[row] = bad
                                    break
                                }
                            }
                        }
                    }
                }
            }
        }
        if let bad = firstBad.lazy.compactMap({ $0 }).first { throw bad }
        return Quantised(rows: rows, columns: columns, codes: codes, scales: scales)
    }

    /// One group of `group` elements; returns its first non-finite value, if any.
    private func quantiseGroup(_ x: UnsafePointer<Float>, start: Int, codes: UnsafeMutablePointer<Int8>,
                               scale: inout Float) -> NonFiniteValue? {
        var absmax: Float = 0
        for k in 0..<group {
            guard x[k].isFinite else { return NonFiniteValue(index: start + k, value: x[k]) }
            absmax = max(absmax, abs(x[k]))
        }
        switch kind {
        case .symmetric:
            let q = Double(symmetricMaximum)
            guard absmax > 0 else {
                scale = 0
                for k in 0..<group { codes[k] = 0 }
                return nil
            }
            scale = Float(Double(absmax) / q)
            let m = Double(absmax)
            for k in 0..<group { codes[k] = Int8((Double(x[k]) * q / m).rounded(.toNearestOrEven)) }
        case .nf4:
            guard absmax > 0 else {
                scale = 0
                for k in 0..<group { codes[k] = 7 }
                return nil
            }
            scale = absmax
            let inverse = 1 / absmax
            Self.nf4Thresholds.withUnsafeBufferPointer { thresholds in
                for k in 0..<group {
                    let n = x[k] * inverse
                    var code: Int8 = 0
                    for t in thresholds where n > t { code += 1 }
                    codes[k] = code
                }
            }
        }
        return nil
    }

    /// level(code) · scale into `w` [rows, columns] (float32, one rounding).
    public func dequantise(_ q: Quantised, into w: UnsafeMutableBufferPointer<Float>, threads: Int = 1) {
        precondition(w.count == q.rows * q.columns && q.columns % group == 0)
        let groupsPerRow = q.columns / group, columns = q.columns
        let grain = max(1, Self.grainElements / max(columns, 1))
        q.codes.withUnsafeBufferPointer { codes in
            q.scales.withUnsafeBufferPointer { scales in
                Self.nf4Levels.withUnsafeBufferPointer { levels in
                    Parallel.forEach(q.rows, grain: grain, threads: threads) { range in
                        for row in range {
                            for g in 0..<groupsPerRow {
                                let s = scales[row * groupsPerRow + g], start = row * columns + g * group
                                switch kind {
                                case .symmetric:
                                    for k in start..<(start + group) { w[k] = Float(codes[k]) * s }
                                case .nf4:
                                    for k in start..<(start + group) { w[k] = levels[Int(codes[k])] * s }
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    public func dequantise(_ q: Quantised, threads: Int = 1) -> [Float] {
        var w = [Float](repeating: 0, count: q.rows * q.columns)
        w.withUnsafeMutableBufferPointer { dequantise(q, into: $0, threads: threads) }
        return w
    }
}
