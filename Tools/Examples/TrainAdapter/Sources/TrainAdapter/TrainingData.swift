import AdaptRuntime
import Foundation

/// SplitMix64 with uniform and Gaussian draws: the same numbers for the same seed everywhere.
struct SplitMix64 {
    private var state: UInt64
    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in [−bound, bound).
    mutating func uniform(_ bound: Double = 1) -> Float {
        Float((Double(next() >> 11) * 0x1p-53 * 2 - 1) * bound)
    }

    /// Standard normal (Box–Muller).
    mutating func gaussian() -> Float {
        let u = max(Double(next() >> 11) * 0x1p-53, 0x1p-60), v = Double(next() >> 11) * 0x1p-53
        return Float((-2 * log(u)).squareRoot() * cos(2 * Double.pi * v))
    }
}

/// The (layer, module) pairs the spec covers, in layer-then-module order.
enum TrainingData {
    static func pairs() -> [(layer: Int, module: Adapter.Module)] {
        let probe = Adapter(threads: 1)
        var pairs: [(layer: Int, module: Adapter.Module)] = []
        for layer in 0..<Adapter.layerCount {
            for module in Adapter.Module.allCases where (try? probe.materialize(layer: layer, module: module)) != nil {
                pairs.append((layer, module))
            }
        }
        return pairs
    }
}

/// The synthetic teacher: per pair a random rank-2 ΔW* `[out, in]`, and
/// targets `y = x·ΔW*ᵀ + noise` for inputs `x` with uniform entries.
struct Teacher {
    static let rank = 2
    static let noise: Float = 1e-3
    let deltas: [[Float]]

    init(pairs: [(layer: Int, module: Adapter.Module)], seed: UInt64) {
        var random = SplitMix64(seed: seed)
        deltas = pairs.map { pair in
            let (out, width) = Adapter.shape(of: pair.module)
            let u = (0..<out * Self.rank).map { _ in random.uniform(0.5) }
            let v = (0..<Self.rank * width).map { _ in random.uniform(0.5) }
            var delta = [Float](repeating: 0, count: out * width)
            for o in 0..<out { for i in 0..<width { for k in 0..<Self.rank { delta[o * width + i] += u[o * Self.rank + k] * v[k * width + i] } } }
            return delta
        }
    }

    /// Inputs `[rows, in]` and noisy targets `[rows, out]` for pair `index`.
    func batch(pair index: Int, module: Adapter.Module, rows: Int, random: inout SplitMix64) -> (x: [Float], y: [Float]) {
        let (out, width) = Adapter.shape(of: module)
        let x = (0..<rows * width).map { _ in random.uniform() }
        var y = [Float](repeating: 0, count: rows * out)
        for row in 0..<rows {
            for o in 0..<out {
                var sum: Float = 0
                for i in 0..<width { sum += x[row * width + i] * deltas[index][o * width + i] }
                y[row * out + o] = sum + Self.noise * random.gaussian()
            }
        }
        return (x, y)
    }
}
