#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Reproducible random numbers for initialisation: SplitMix64, one stream per
/// tensor (seed mixed with the tensor's key by FNV-1a), so a tensor's values do
/// not depend on which other tensors the spec has, nor on thread scheduling.
public struct SeededRandom: Sendable {
    private var state: UInt64

    public init(seed: UInt64, stream: String) {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in stream.utf8 { h = (h ^ UInt64(byte)) &* 0x0000_0100_0000_01b3 }
        state = seed ^ h
    }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in [0, 1) with 53 random bits.
    public mutating func unit() -> Double { Double(next() >> 11) * 0x1p-53 }

    /// Uniform in [−bound, bound).
    public mutating func uniform(_ bound: Double) -> Float { Float((2 * unit() - 1) * bound) }

    /// Normal by Box–Muller.
    public mutating func normal(standardDeviation: Double) -> Float {
        let u = 1 - unit(), v = unit()
        return Float(standardDeviation * (-2 * log(u)).squareRoot() * cos(2 * Double.pi * v))
    }

    /// `count` random signs ±1 (Rademacher), 64 from each draw: a sketching
    /// matrix as good as a Gaussian one for a randomized range finder (Halko
    /// et al. 2011, §7.4) at a fraction of the cost of Box–Muller.
    public mutating func signs(_ count: Int) -> [Float] {
        var values = [Float](repeating: 0, count: count)
        var bits: UInt64 = 0
        for i in 0..<count {
            if i % 64 == 0 { bits = next() }
            values[i] = bits & 1 == 0 ? 1 : -1
            bits >>= 1
        }
        return values
    }

    /// `count` standard normals, both Box–Muller outputs used (half the log
    /// and sqrt calls of `normal`; a different sequence from it).
    public mutating func normals(_ count: Int) -> [Float] {
        var values = [Float](repeating: 0, count: count)
        var i = 0
        while i < count {
            let radius = (-2 * log(1 - unit())).squareRoot(), angle = 2 * Double.pi * unit()
            values[i] = Float(radius * cos(angle))
            if i + 1 < count { values[i + 1] = Float(radius * sin(angle)) }
            i += 2
        }
        return values
    }
}
