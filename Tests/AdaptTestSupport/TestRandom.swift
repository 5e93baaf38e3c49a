/// SplitMix64: test data that is the same on every run. Kept apart from
/// adaptc's own generator so tests never share its code paths.
public struct TestRandom {
    private var state: UInt64
    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in [−bound, bound).
    public mutating func uniform(_ bound: Float = 1) -> Float {
        Float((Double(next() >> 11) * 0x1p-53 * 2 - 1) * Double(bound))
    }

    public mutating func floats(_ count: Int, bound: Float = 1) -> [Float] {
        (0..<count).map { _ in uniform(bound) }
    }
}
