import AdaptRuntime
import AdaptTestSupport

/// Independent float64 references for the pruning tests: dense ΔW, output
/// energies by the definition, and a one-sided Jacobi SVD (Hestenes), none of
/// which share code with AdaptRuntime's LAPACK path.
enum PruningReference {
    static func randomFactors(_ random: inout TestRandom, out: Int, in inFeatures: Int, rank: Int, scale: Double) -> LoRAFactors {
        // Columns of B decay so the spectrum is not flat.
        var b = random.floats(out * rank)
        for o in 0..<out { for k in 0..<rank { b[o * rank + k] *= Float(1.0 / Double(k + 1)) } }
        return LoRAFactors(a: random.floats(rank * inFeatures), b: b, rank: rank, outFeatures: out, inFeatures: inFeatures, scale: scale)
    }

    /// Rows spread in all directions.
    static func isotropicRows(_ random: inout TestRandom, rows: Int, in inFeatures: Int) -> [Float] {
        random.floats(rows * inFeatures)
    }

    /// Rows concentrated in `directions` random directions plus 1e-3 noise, so the
    /// data-weighted shares differ from σ².
    static func concentratedRows(_ random: inout TestRandom, rows: Int, in inFeatures: Int, directions: Int) -> [Float] {
        let basis = random.floats(directions * inFeatures)
        var x = [Float](repeating: 0, count: rows * inFeatures)
        for row in 0..<rows {
            let coefficients = random.floats(directions)
            for i in 0..<inFeatures {
                var v = 1e-3 * random.uniform()
                for d in 0..<directions { v += coefficients[d] * basis[d * inFeatures + i] }
                x[row * inFeatures + i] = v
            }
        }
        return x
    }

    /// ΔW = s·B·A `[out, in]` by the definition.
    static func delta(_ f: LoRAFactors) -> [Double] {
        var d = [Double](repeating: 0, count: f.outFeatures * f.inFeatures)
        for o in 0..<f.outFeatures {
            for k in 0..<f.rank {
                let bk = f.scale * Double(f.b[o * f.rank + k])
                for i in 0..<f.inFeatures { d[o * f.inFeatures + i] += bk * Double(f.a[k * f.inFeatures + i]) }
            }
        }
        return d
    }

    /// Σ_rows ‖x·Dᵀ‖² for a dense D `[out, in]`.
    static func outputEnergy(_ d: [Double], out: Int, in inFeatures: Int, x: [Float], rows: Int) -> Double {
        var total = 0.0
        for row in 0..<rows {
            for o in 0..<out {
                var y = 0.0
                for i in 0..<inFeatures { y += Double(x[row * inFeatures + i]) * d[o * inFeatures + i] }
                total += y * y
            }
        }
        return total
    }

    /// The best rank-r approximation of M `[m, n]` (m ≥ n) by one-sided Jacobi SVD.
    static func truncatedSVD(_ matrix: [Double], rows m: Int, cols n: Int, rank r: Int) -> [Double] {
        precondition(m >= n)
        var u = matrix
        var v = [Double](repeating: 0, count: n * n)
        for i in 0..<n { v[i * n + i] = 1 }
        for _ in 0..<60 {
            var rotated = false
            for p in 0..<(n - 1) {
                for q in (p + 1)..<n {
                    var alpha = 0.0, beta = 0.0, gamma = 0.0
                    for i in 0..<m {
                        alpha += u[i * n + p] * u[i * n + p]
                        beta += u[i * n + q] * u[i * n + q]
                        gamma += u[i * n + p] * u[i * n + q]
                    }
                    guard abs(gamma) > 1e-15 * (alpha * beta).squareRoot() else { continue }
                    rotated = true
                    let zeta = (beta - alpha) / (2 * gamma)
                    let t = (zeta >= 0 ? 1.0 : -1.0) / (abs(zeta) + (1 + zeta * zeta).squareRoot())
                    let c = 1 / (1 + t * t).squareRoot(), s = c * t
                    for i in 0..<m {
                        let up = u[i * n + p], uq = u[i * n + q]
                        u[i * n + p] = c * up - s * uq
                        u[i * n + q] = s * up + c * uq
                    }
                    for i in 0..<n {
                        let vp = v[i * n + p], vq = v[i * n + q]
                        v[i * n + p] = c * vp - s * vq
                        v[i * n + q] = s * vp + c * vq
                    }
                }
            }
            if !rotated { break }
        }
        // Columns of u are σ_j·u_j; keep the r largest.
        let norms = (0..<n).map { j in (0..<m).reduce(0.0) { $0 + u[$1 * n + j] * u[$1 * n + j] } }
        let top = norms.indices.sorted { norms[$0] > norms[$1] }.prefix(r)
        var result = [Double](repeating: 0, count: m * n)
        for j in top { for i in 0..<m { for k in 0..<n { result[i * n + k] += u[i * n + j] * v[k * n + j] } } }
        return result
    }

    /// max |a − b| / max |b|; infinity when either holds a NaN.
    static func relativeError(_ a: [Double], _ b: [Double]) -> Double {
        maxRelativeError(a, b)
    }
}
