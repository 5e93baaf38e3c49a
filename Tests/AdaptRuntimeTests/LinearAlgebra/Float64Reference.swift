@testable import AdaptRuntime

/// Matrices with a known SVD, built in float64 independently of LAPACK:
/// W = U·diag(σ)·Vᵀ with U, V from modified Gram–Schmidt on seeded Gaussians.
struct KnownSVD {
    let m: Int, n: Int
    let u: [[Double]]      // k columns of length m
    let v: [[Double]]      // k columns of length n
    let sigma: [Double]    // descending

    init(m: Int, n: Int, sigma: [Double], seed: UInt64) {
        self.m = m
        self.n = n
        self.sigma = sigma
        var random = SeededRandom(seed: seed, stream: "known-svd")
        u = KnownSVD.orthonormalColumns(sigma.count, length: m, &random)
        v = KnownSVD.orthonormalColumns(sigma.count, length: n, &random)
    }

    static func orthonormalColumns(_ count: Int, length: Int, _ random: inout SeededRandom) -> [[Double]] {
        var columns: [[Double]] = []
        while columns.count < count {
            var x = (0..<length).map { _ in Double(random.normal(standardDeviation: 1)) }
            for _ in 0..<2 {  // twice is enough (Giraud et al., "twice is enough")
                for q in columns {
                    let dot = zip(q, x).reduce(0) { $0 + $1.0 * $1.1 }
                    for i in 0..<length { x[i] -= dot * q[i] }
                }
            }
            let norm = x.reduce(0) { $0 + $1 * $1 }.squareRoot()
            columns.append(x.map { $0 / norm })
        }
        return columns
    }

    /// Σ σ_k u_k v_kᵀ over `kept`, row-major [m, n].
    func sum(_ kept: Range<Int>) -> [Double] {
        var w = [Double](repeating: 0, count: m * n)
        w.withUnsafeMutableBufferPointer { w in
            for k in kept {
                u[k].withUnsafeBufferPointer { u in v[k].withUnsafeBufferPointer { v in
                    for i in 0..<m {
                        let a = sigma[k] * u[i]
                        for j in 0..<n { w[i * n + j] += a * v[j] }
                    }
                } }
            }
        }
        return w
    }

    var matrix: [Double] { sum(0..<sigma.count) }
}

/// ‖a − b‖_F in float64.
func frobeniusDistance(_ a: [Float], _ b: [Double]) -> Double {
    zip(a, b).reduce(0) { $0 + (Double($1.0) - $1.1) * (Double($1.0) - $1.1) }.squareRoot()
}

func frobeniusNorm(_ a: [Double]) -> Double { a.reduce(0) { $0 + $1 * $1 }.squareRoot() }

/// U·diag(σ)·Vt of a truncated SVD, in float64.
func product(_ svd: TruncatedSVD) -> [Double] {
    var w = [Double](repeating: 0, count: svd.m * svd.n)
    for k in 0..<svd.rank {
        for i in 0..<svd.m {
            let a = Double(svd.sigma[k]) * Double(svd.u[i * svd.rank + k])
            for j in 0..<svd.n { w[i * svd.n + j] += a * Double(svd.vt[k * svd.n + j]) }
        }
    }
    return w
}
