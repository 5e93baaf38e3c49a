/// Float64 references for the Tucker and CP tests (runtime and CLI), written from the
/// definitions with plain loops and nothing of AdaptRuntime: explicit
/// unfoldings, one-sided Jacobi SVD (Hestenes 1958), naive mode products,
/// naive MTTKRP and Gaussian elimination.
public enum Reference {
    /// Row-major multi-index of every entry.
    public static func indices(_ shape: [Int]) -> [[Int]] {
        var result: [[Int]] = []
        var index = [Int](repeating: 0, count: shape.count)
        let count = shape.reduce(1, *)
        for _ in 0..<count {
            result.append(index)
            var k = shape.count - 1
            while k >= 0 {
                index[k] += 1
                if index[k] < shape[k] { break }
                index[k] = 0
                k -= 1
            }
        }
        return result
    }

    public static func offset(_ index: [Int], _ shape: [Int]) -> Int {
        zip(index, shape).reduce(0) { $0 * $1.1 + $1.0 }
    }

    /// X₍ₖ₎ as n_k rows (columns in any fixed order of the other modes).
    public static func unfolding(_ x: [Double], shape: [Int], mode: Int) -> [[Double]] {
        var rows = [[Double]](repeating: [], count: shape[mode])
        for index in indices(shape) { rows[index[mode]].append(x[offset(index, shape)]) }
        return rows
    }

    /// The left singular vectors of the matrix with these rows (as columns,
    /// each of length rows.count) and the singular values, descending, by
    /// one-sided Jacobi rotations on the rows until they are orthogonal.
    public static func leftSingularVectors(_ rows: [[Double]]) -> (vectors: [[Double]], sigma: [Double]) {
        var a = rows
        let n = a.count
        var v = (0..<n).map { i in (0..<n).map { $0 == i ? 1.0 : 0 } }   // v[i] = row i of V
        func dot(_ x: [Double], _ y: [Double]) -> Double { zip(x, y).reduce(0) { $0 + $1.0 * $1.1 } }
        for _ in 0..<60 {
            var rotated = false
            for i in 0..<n {
                for j in (i + 1)..<max(n, i + 1) {
                    let alpha = dot(a[i], a[i]), beta = dot(a[j], a[j]), gamma = dot(a[i], a[j])
                    guard abs(gamma) > 1e-15 * (alpha * beta).squareRoot(), gamma != 0 else { continue }
                    rotated = true
                    let zeta = (beta - alpha) / (2 * gamma)
                    let t = (zeta >= 0 ? 1.0 : -1.0) / (abs(zeta) + (1 + zeta * zeta).squareRoot())
                    let c = 1 / (1 + t * t).squareRoot(), s = c * t
                    for q in a[i].indices {
                        let x = a[i][q], y = a[j][q]
                        a[i][q] = c * x - s * y
                        a[j][q] = s * x + c * y
                    }
                    for q in 0..<n {
                        let x = v[q][i], y = v[q][j]
                        v[q][i] = c * x - s * y
                        v[q][j] = s * x + c * y
                    }
                }
            }
            if !rotated { break }
        }
        // A = V·(rows of A after rotation): row i of the rotated A has norm σ_i.
        let sigma = a.map { dot($0, $0).squareRoot() }
        let order = sigma.indices.sorted { sigma[$0] > sigma[$1] }
        return (order.map { i in (0..<n).map { v[$0][i] } }, order.map { sigma[$0] })
    }

    /// X ×ₖ M, M given as rows (new size × old size).
    public static func modeProduct(_ x: [Double], shape: [Int], mode: Int, matrix: [[Double]]) -> (values: [Double], shape: [Int]) {
        var outShape = shape
        outShape[mode] = matrix.count
        var out = [Double](repeating: 0, count: outShape.reduce(1, *))
        for index in indices(shape) {
            let value = x[offset(index, shape)]
            var target = index
            for row in matrix.indices {
                target[mode] = row
                out[offset(target, outShape)] += matrix[row][index[mode]] * value
            }
        }
        return (out, outShape)
    }

    public static func transpose(_ columns: [[Double]]) -> [[Double]] {
        guard let length = columns.first?.count else { return [] }
        return (0..<length).map { i in columns.map { $0[i] } }
    }

    public struct TuckerResult {
        public var core: [Double], coreShape: [Int]
        public var factors: [[[Double]]?]   // columns
        public var reconstruction: [Double]
        public var fits: [Double]
    }

    public static func norm(_ x: [Double]) -> Double { x.reduce(0) { $0 + $1 * $1 }.squareRoot() }

    public static func distance(_ x: [Double], _ y: [Double]) -> Double {
        zip(x, y).reduce(0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) }.squareRoot()
    }

    /// G ×ₖ U_k over the modes with a factor, and the fit against x.
    public static func tuckerReconstruction(_ core: [Double], coreShape: [Int], factors: [[[Double]]?]) -> [Double] {
        var values = core, shape = coreShape
        for (k, factor) in factors.enumerated() {
            guard let factor else { continue }
            (values, shape) = modeProduct(values, shape: shape, mode: k, matrix: transpose(factor))
        }
        return values
    }

    public static func projection(_ x: [Double], shape: [Int], factors: [[[Double]]?], skipping: Int?) -> (values: [Double], shape: [Int]) {
        var values = x, current = shape
        for (k, factor) in factors.enumerated() where k != skipping {
            guard let factor else { continue }
            (values, current) = modeProduct(values, shape: current, mode: k, matrix: factor)
        }
        return (values, current)
    }

    /// HOSVD then `sweeps` HOOI sweeps (no early stop), fit after each.
    public static func tucker(_ x: [Double], shape: [Int], ranks: [Int?], sweeps: Int) -> TuckerResult {
        var factors: [[[Double]]?] = ranks.enumerated().map { k, rank in
            rank.map { Array(leftSingularVectors(unfolding(x, shape: shape, mode: k)).vectors.prefix($0)) }
        }
        func finish() -> TuckerResult {
            let (core, coreShape) = projection(x, shape: shape, factors: factors, skipping: nil)
            let reconstruction = tuckerReconstruction(core, coreShape: coreShape, factors: factors)
            return TuckerResult(core: core, coreShape: coreShape, factors: factors, reconstruction: reconstruction,
                                fits: [1 - distance(x, reconstruction) / norm(x)])
        }
        var result = finish()
        for _ in 0..<sweeps {
            for k in ranks.indices {
                guard let rank = ranks[k] else { continue }
                let (y, yShape) = projection(x, shape: shape, factors: factors, skipping: k)
                factors[k] = Array(leftSingularVectors(unfolding(y, shape: yShape, mode: k)).vectors.prefix(rank))
            }
            let fits = result.fits
            result = finish()
            result.fits = fits + result.fits
        }
        return result
    }

    /// Σ_c ∏_k F_k[i_k, c], factors row-major [n_k, R].
    public static func cpReconstruction(_ factors: [[Double]], shape: [Int], rank: Int) -> [Double] {
        indices(shape).map { index in
            (0..<rank).reduce(0.0) { sum, c in
                sum + index.enumerated().reduce(1.0) { $0 * factors[$1.offset][$1.element * rank + c] }
            }
        }
    }

    /// Textbook ALS (Kolda & Bader 2009, fig. 3.3) without normalisation: F_k ←
    /// X₍ₖ₎(⊙_{j≠k}F_j)·(⊛_{j≠k}F_jᵀF_j)⁻¹, modes in order, the fit after each
    /// sweep from the explicit reconstruction.
    public static func als(_ x: [Double], shape: [Int], rank: Int, start: [[Double]], sweeps: Int) -> (factors: [[Double]], fits: [Double]) {
        var factors = start
        var fits: [Double] = []
        let all = indices(shape)
        for _ in 0..<sweeps {
            for k in shape.indices {
                var m = [Double](repeating: 0, count: shape[k] * rank)
                for index in all {
                    let value = x[offset(index, shape)]
                    for c in 0..<rank {
                        var product = value
                        for j in shape.indices where j != k { product *= factors[j][index[j] * rank + c] }
                        m[index[k] * rank + c] += product
                    }
                }
                var v = [[Double]](repeating: [Double](repeating: 1, count: rank), count: rank)
                for j in shape.indices where j != k {
                    for c in 0..<rank {
                        for d in 0..<rank {
                            var g = 0.0
                            for i in 0..<shape[j] { g += factors[j][i * rank + c] * factors[j][i * rank + d] }
                            v[c][d] *= g
                        }
                    }
                }
                for i in 0..<shape[k] {
                    let row = solve(v, Array(m[(i * rank)..<((i + 1) * rank)]))
                    for c in 0..<rank { factors[k][i * rank + c] = row[c] }
                }
            }
            fits.append(1 - distance(x, cpReconstruction(factors, shape: shape, rank: rank)) / norm(x))
        }
        return (factors, fits)
    }

    /// x with V·x = b (V symmetric) by Gaussian elimination with partial pivoting.
    public static func solve(_ v: [[Double]], _ b: [Double]) -> [Double] {
        var a = v, y = b
        let n = b.count
        for col in 0..<n {
            let pivot = (col..<n).max { abs(a[$0][col]) < abs(a[$1][col]) }!
            a.swapAt(col, pivot)
            y.swapAt(col, pivot)
            for row in (col + 1)..<max(n, col + 1) {
                let f = a[row][col] / a[col][col]
                for q in col..<n { a[row][q] -= f * a[col][q] }
                y[row] -= f * y[col]
            }
        }
        var x = [Double](repeating: 0, count: n)
        for row in stride(from: n - 1, through: 0, by: -1) {
            var s = y[row]
            for q in (row + 1)..<max(n, row + 1) { s -= a[row][q] * x[q] }
            x[row] = s / a[row][row]
        }
        return x
    }

    /// A random tensor of exact multilinear rank `ranks` (nil: full) plus
    /// `noise` times uniform noise, in float64.
    public static func lowTuckerRank(shape: [Int], ranks: [Int?], noise: Double, seed: UInt64) -> [Double] {
        var random = TestRandom(seed: seed)
        let coreShape = zip(shape, ranks).map { $1 ?? $0 }
        let core = (0..<coreShape.reduce(1, *)).map { _ in Double(random.uniform()) }
        let factors: [[[Double]]?] = zip(shape, ranks).map { n, r in
            r.map { r in (0..<r).map { _ in (0..<n).map { _ in Double(random.uniform()) } } }
        }
        let x = tuckerReconstruction(core, coreShape: coreShape, factors: factors)
        let scale = norm(x) / Double(x.count).squareRoot()
        return x.map { $0 + noise * scale * Double(random.uniform()) }
    }

    /// A random tensor of exact CP rank R plus noise, in float64.
    public static func lowCPRank(shape: [Int], rank: Int, noise: Double, seed: UInt64) -> [Double] {
        var random = TestRandom(seed: seed)
        let factors = shape.map { n in (0..<(n * rank)).map { _ in Double(random.uniform()) } }
        let x = cpReconstruction(factors, shape: shape, rank: rank)
        let scale = norm(x) / Double(x.count).squareRoot()
        return x.map { $0 + noise * scale * Double(random.uniform()) }
    }
}
