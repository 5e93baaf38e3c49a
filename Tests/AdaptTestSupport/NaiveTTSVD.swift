/// A float64 TT-SVD written from Oseledets (2011), Algorithm 1, with a plain
/// one-sided Jacobi SVD (Hestenes) of each unfolding: no LAPACK, no Gram
/// matrix, no streaming — the reference adaptc's `TTSVD` is checked against.
public enum NaiveTTSVD {
    /// Thin SVD of row-major `a [m, n]` by one-sided Jacobi: singular values
    /// descending, U `[m, k]` and V `[n, k]` row-major, k = min(m, n).
    public static func svd(_ a: [Double], m: Int, n: Int) -> (u: [Double], sigma: [Double], v: [Double]) {
        if m < n {
            var t = [Double](repeating: 0, count: m * n)
            for i in 0..<m { for j in 0..<n { t[j * m + i] = a[i * n + j] } }
            let s = svd(t, m: n, n: m)
            return (s.v, s.sigma, s.u)
        }
        // Columns of `w` are rotated until mutually orthogonal; V collects the rotations.
        var w = a
        var v = [Double](repeating: 0, count: n * n)
        for i in 0..<n { v[i * n + i] = 1 }
        for _ in 0..<60 {
            var rotated = false
            for p in 0..<n {
                for q in (p + 1)..<n {
                    var alpha = 0.0, beta = 0.0, gamma = 0.0
                    for i in 0..<m {
                        alpha += w[i * n + p] * w[i * n + p]
                        beta += w[i * n + q] * w[i * n + q]
                        gamma += w[i * n + p] * w[i * n + q]
                    }
                    if gamma == 0 || abs(gamma) <= 1e-15 * (alpha * beta).squareRoot() { continue }
                    rotated = true
                    let zeta = (beta - alpha) / (2 * gamma)
                    let t = (zeta >= 0 ? 1.0 : -1.0) / (abs(zeta) + (1 + zeta * zeta).squareRoot())
                    let c = 1 / (1 + t * t).squareRoot(), s = c * t
                    for i in 0..<m {
                        let (x, y) = (w[i * n + p], w[i * n + q])
                        w[i * n + p] = c * x - s * y
                        w[i * n + q] = s * x + c * y
                    }
                    for i in 0..<n {
                        let (x, y) = (v[i * n + p], v[i * n + q])
                        v[i * n + p] = c * x - s * y
                        v[i * n + q] = s * x + c * y
                    }
                }
            }
            if !rotated { break }
        }
        let norms = (0..<n).map { j in (0..<m).reduce(0.0) { $0 + w[$1 * n + j] * w[$1 * n + j] }.squareRoot() }
        let order = (0..<n).sorted { norms[$0] > norms[$1] }
        var u = [Double](repeating: 0, count: m * n), vs = [Double](repeating: 0, count: n * n)
        for (k, j) in order.enumerated() {
            for i in 0..<m { u[i * n + k] = norms[j] > 0 ? w[i * n + j] / norms[j] : 0 }
            for i in 0..<n { vs[i * n + k] = v[i * n + j] }
        }
        return (u, order.map { norms[$0] }, vs)
    }

    /// The ranks the bound picks: at each bond the smallest r ≥ 1 whose
    /// discarded Σσ² ≤ ε²‖T‖²/(d − 1), at most `caps[k]`; `caps` without ε.
    /// Returns the approximation (row-major over `sizes`) and the ranks.
    public static func approximate(_ tensor: [Double], sizes: [Int], caps: [Int],
                                   tolerance: Double? = nil) -> (tensor: [Double], ranks: [Int]) {
        let d = sizes.count
        let normSquared = tensor.reduce(0.0) { $0 + $1 * $1 }
        var cores: [[Double]] = []
        var ranks = [1]
        var c = tensor, rest = tensor.count
        for k in 0..<(d - 1) {
            let m = ranks[k] * sizes[k]
            rest /= sizes[k]
            let s = svd(c, m: m, n: rest)
            let cap = min(caps[k], m, rest)
            var r = cap
            if let tolerance {
                let budget = tolerance * tolerance * normSquared / Double(d - 1)
                for candidate in 1...cap {
                    let tail = s.sigma.dropFirst(candidate).reduce(0.0) { $0 + $1 * $1 }
                    if tail <= budget { r = candidate; break }
                }
            }
            let kk = min(m, rest)
            var core = [Double](repeating: 0, count: m * r)
            for i in 0..<m { for j in 0..<r { core[i * r + j] = s.u[i * kk + j] } }
            var next = [Double](repeating: 0, count: r * rest)
            for j in 0..<r { for col in 0..<rest { next[j * rest + col] = s.sigma[j] * s.v[col * kk + j] } }
            cores.append(core)
            ranks.append(r)
            c = next
        }
        cores.append(c)
        ranks.append(1)
        // Contract left to right: partial [prefix, r_k].
        var partial: [Double] = [1], prefix = 1
        for k in 0..<d {
            let (a, n, b) = (ranks[k], sizes[k], ranks[k + 1])
            var next = [Double](repeating: 0, count: prefix * n * b)
            for p in 0..<prefix { for i in 0..<a where partial[p * a + i] != 0 {
                for x in 0..<(n * b) { next[p * n * b + x] += partial[p * a + i] * cores[k][i * n * b + x] }
            } }
            partial = next
            prefix *= n
        }
        return (partial, Array(ranks.dropFirst().dropLast()))
    }

    /// `tensor` (row-major over `sizes`) with its modes reversed.
    public static func reversedModes(_ tensor: [Double], sizes: [Int]) -> [Double] {
        permuted(tensor, sizes: sizes, order: Array(sizes.indices.reversed()))
    }

    /// `result[j_{order[0]}, j_{order[1]}, …] = tensor[j_0, j_1, …]`.
    public static func permuted(_ tensor: [Double], sizes: [Int], order: [Int]) -> [Double] {
        let d = sizes.count
        var strides = [Int](repeating: 1, count: d)
        for k in stride(from: d - 2, through: 0, by: -1) { strides[k] = strides[k + 1] * sizes[k + 1] }
        let newSizes = order.map { sizes[$0] }
        var newStrides = [Int](repeating: 1, count: d)
        for k in stride(from: d - 2, through: 0, by: -1) { newStrides[k] = newStrides[k + 1] * newSizes[k + 1] }
        var result = [Double](repeating: 0, count: tensor.count)
        for flat in 0..<tensor.count {
            var target = 0
            for (position, mode) in order.enumerated() {
                target += ((flat / strides[mode]) % sizes[mode]) * newStrides[position]
            }
            result[target] = tensor[flat]
        }
        return result
    }
}
