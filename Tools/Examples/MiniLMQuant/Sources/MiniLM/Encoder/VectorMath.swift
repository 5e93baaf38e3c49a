/// The encoder's elementwise maths on 8-float vectors: sums for LayerNorm, and
/// exp and erf without libm, so that softmax and GELU vectorise (a scalar
/// `erff` per FFN activation would cost more than the FFN's GEMMs).
enum VectorMath {
    typealias Vector = SIMD8<Float>

    @inline(__always)
    static func load(_ p: UnsafePointer<Float>) -> Vector { UnsafeRawPointer(p).loadUnaligned(as: Vector.self) }

    @inline(__always)
    static func store(_ v: Vector, _ p: UnsafeMutablePointer<Float>) { UnsafeMutableRawPointer(p).storeBytes(of: v, as: Vector.self) }

    /// Applies `f` to x[0..<count] in place, eight at a time (the tail through a padded vector).
    @inline(__always)
    static func map(_ x: UnsafeMutablePointer<Float>, _ count: Int, _ f: (Vector) -> Vector) {
        var i = 0
        while i + 8 <= count {
            store(f(load(x + i)), x + i)
            i += 8
        }
        if i < count {
            var tail = Vector()
            for j in 0..<(count - i) { tail[j] = x[i + j] }
            tail = f(tail)
            for j in 0..<(count - i) { x[i + j] = tail[j] }
        }
    }

    static func sum(_ x: UnsafePointer<Float>, _ count: Int) -> Float {
        var accumulator = Vector()
        var i = 0
        while i + 8 <= count {
            accumulator += load(x + i)
            i += 8
        }
        var total = accumulator.sum()
        while i < count {
            total += x[i]
            i += 1
        }
        return total
    }

    static func sumOfSquaredDeviations(_ x: UnsafePointer<Float>, _ count: Int, from mean: Float) -> Float {
        var accumulator = Vector()
        var i = 0
        while i + 8 <= count {
            let d = load(x + i) - mean
            accumulator += d * d
            i += 8
        }
        var total = accumulator.sum()
        while i < count {
            total += (x[i] - mean) * (x[i] - mean)
            i += 1
        }
        return total
    }

    static func maximum(_ x: UnsafePointer<Float>, _ count: Int) -> Float {
        var result = -Float.infinity
        for i in 0..<count { result = Swift.max(result, x[i]) }
        return result
    }

    /// eˣ to about 2 ulp (Cephes `expf`: x = n·ln 2 + r, |r| ≤ ln 2 / 2, a degree-6
    /// polynomial for eʳ, 2ⁿ from the exponent bits); 0 below -87.3.
    @inline(__always)
    static func exp(_ x: Vector) -> Vector {
        let clamped = pointwiseMin(pointwiseMax(x, Vector(repeating: -87.33654)), Vector(repeating: 88.37626))
        // Round x·log₂e to the nearest integer by adding 1.5·2²³: n sits in the low mantissa bits.
        let magic = Vector(repeating: 12_582_912)
        let shifted = clamped * 1.442_695_04 + magic
        let n = shifted - magic
        let r = clamped - n * 0.693_359_375 + n * 2.121_944_4e-4
        var p = Vector(repeating: 1.987_569_15e-4)
        p = p * r + 1.398_199_950_7e-3
        p = p * r + 8.333_451_907_3e-3
        p = p * r + 4.166_579_589_4e-2
        p = p * r + 1.666_666_545_9e-1
        p = p * r + 5.000_000_120_1e-1
        p = p * (r * r) + r + 1
        let exponent = (unsafeBitCast(shifted, to: SIMD8<Int32>.self) &- unsafeBitCast(magic, to: SIMD8<Int32>.self) &+ 127) &<< 23
        let result = p * unsafeBitCast(exponent, to: Vector.self)
        return result.replacing(with: 0, where: x .< -87.33654)
    }

    /// erf(x) by Abramowitz & Stegun 7.1.26 (absolute error ≤ 1.5e-7), the form
    /// PyTorch's vectorised CPU `erf` uses.
    @inline(__always)
    static func erf(_ x: Vector) -> Vector {
        let bits = unsafeBitCast(x, to: SIMD8<UInt32>.self)
        let sign = bits & 0x8000_0000
        let z = unsafeBitCast(bits & 0x7FFF_FFFF, to: Vector.self)
        let t = 1 / (z * 0.327_591_1 + 1)
        var p = Vector(repeating: 1.061_405_429)
        p = p * t - 1.453_152_027
        p = p * t + 1.421_413_741
        p = p * t - 0.284_496_736
        p = p * t + 0.254_829_592
        let y = 1 - p * t * exp(-(z * z))
        return unsafeBitCast(unsafeBitCast(y, to: SIMD8<UInt32>.self) | sign, to: Vector.self)
    }

    /// GELU(x) = x/2 · (1 + erf(x/√2)) (Hendrycks & Gimpel 2016), BERT's activation, in place.
    static func gelu(_ x: UnsafeMutablePointer<Float>, _ count: Int) {
        map(x, count) { v in v * 0.5 * (1 + erf(v * 0.707_106_781_186_547_5)) }
    }

    /// Softmax of one row in place: eˣ⁻ᵐᵃˣ / Σ.
    static func softmax(_ x: UnsafeMutablePointer<Float>, _ count: Int) {
        let top = maximum(x, count)
        map(x, count) { v in exp(v - top) }
        let scale = 1 / sum(x, count)
        map(x, count) { v in v * scale }
    }
}
