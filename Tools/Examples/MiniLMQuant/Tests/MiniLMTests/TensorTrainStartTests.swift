import AdaptRuntime
import MiniLM
import XCTest

/// The LoftQ start of a tensor-train against a reference written from the
/// definition: TT-SVD (Oseledets 2011) of the stacked residual W − Q in the
/// order [in, module, out] (TinyTT's one layer drops out), each unfolding's
/// leading left singular vectors from a cyclic Jacobi eigensolver in float64,
/// never AdaptRuntime's TTSVD or LAPACK.
final class TensorTrainStartTests: XCTestCase {
    func tinyWeights() throws -> EncoderWeights {
        let folder = TinyCheckpoint.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try TinyCheckpoint.write(to: folder)
        return try Checkpoint.load(folder: folder).weights
    }

    static let maps: [EncoderMap] = [.query, .key, .value, .attentionOutput]

    func testOneIterationIsTheTTSVDOfWhatQuantisationLost() throws {
        let weights = try tinyWeights()
        let quantiser = Quantiser(bits: 4, group: 4, kind: .symmetric)
        let plain = try weights.quantised(quantiser)
        var base = plain
        let adapter = TinyTTAdapter(threads: 1), binding = try AdapterBinding<TinyTTAdapter>()
        let report = try AdapterStart.initialise(adapter, binding, float: weights, quantised: &base, quantiser: quantiser,
                                                 iterations: 1, seed: 1, tensorStart: .loftq)
        XCTAssertLessThan(report.startError, report.quantisationError)
        // T[i, m, o] = (W − Q)[m][o, i]
        let (n, modules) = (4, Self.maps.count)
        var tensor = [Double](repeating: 0, count: n * modules * n)
        for (m, map) in Self.maps.enumerated() {
            XCTAssertEqual(base.weight(layer: 0, map: map), plain.weight(layer: 0, map: map), "\(map): one iteration keeps Q")
            let w = weights.weight(layer: 0, map: map), q = plain.weight(layer: 0, map: map)
            for o in 0..<n { for i in 0..<n { tensor[(i * modules + m) * n + o] = Double(w[o * n + i]) - Double(q[o * n + i]) } }
        }
        let expected = Self.referenceTTSVD(tensor, sizes: [n, modules, n], ranks: [2, 2])
        var largest = 0.0
        for (m, map) in Self.maps.enumerated() {
            let delta = try adapter.materialize(layer: 0, module: binding.modules[map]!)
            for o in 0..<n {
                for i in 0..<n {
                    let e = expected[(i * modules + m) * n + o]
                    largest = max(largest, abs(e))
                    XCTAssertEqual(Double(delta[o * n + i]), e, accuracy: 1e-5, "\(map) [\(o), \(i)]")
                }
            }
        }
        XCTAssertGreaterThan(largest, 1e-3, "the residual's train should not be zero")
    }

    /// Several iterations: the error reported is ‖W − (Q_T + ΔW)‖/‖W‖ of the base and adapter left.
    func testLoftQReportsTheErrorOfTheBaseAndTrainItLeaves() throws {
        let weights = try tinyWeights()
        let quantiser = Quantiser(bits: 4, group: 4, kind: .symmetric)
        var base = try weights.quantised(quantiser)
        let adapter = TinyTTAdapter(threads: 1), binding = try AdapterBinding<TinyTTAdapter>()
        let report = try AdapterStart.initialise(adapter, binding, float: weights, quantised: &base, quantiser: quantiser,
                                                 iterations: 4, seed: 1, tensorStart: .loftq)
        var missed = 0.0, energy = 0.0
        for map in Self.maps {
            let delta = try adapter.materialize(layer: 0, module: binding.modules[map]!)
            for (i, w) in weights.weight(layer: 0, map: map).enumerated() {
                let r = Double(w) - Double(base.weight(layer: 0, map: map)[i]) - Double(delta[i])
                missed += r * r
                energy += Double(w) * Double(w)
            }
        }
        XCTAssertEqual(report.startError, (missed / energy).squareRoot(), accuracy: 1e-5)
        XCTAssertLessThan(report.startError, report.quantisationError)
    }

    /// The tensor the truncated TT-SVD represents: step k projects the
    /// remainder's unfolding [r·n_k, rest] on its leading r_k left singular vectors.
    static func referenceTTSVD(_ tensor: [Double], sizes: [Int], ranks: [Int]) -> [Double] {
        var bases: [[Double]] = []  // U_k [rows_k, r_k]
        var rowsOf: [Int] = []
        var remainder = tensor, rows = sizes[0], left = 1
        for k in 0..<ranks.count {
            rows = left * sizes[k]
            let columns = remainder.count / rows
            var gram = [Double](repeating: 0, count: rows * rows)
            for a in 0..<rows { for b in 0..<rows { for c in 0..<columns { gram[a * rows + b] += remainder[a * columns + c] * remainder[b * columns + c] } } }
            let u = leadingEigenvectors(gram, n: rows, count: ranks[k])
            var next = [Double](repeating: 0, count: ranks[k] * columns)
            for r in 0..<ranks[k] { for a in 0..<rows { for c in 0..<columns { next[r * columns + c] += u[a * ranks[k] + r] * remainder[a * columns + c] } } }
            bases.append(u)
            rowsOf.append(rows)
            remainder = next
            left = ranks[k]
        }
        // Back up: C_{k−1} = U_k·C_k, read as [r_{k−1}, n_k·rest].
        for k in (0..<ranks.count).reversed() {
            let columns = remainder.count / ranks[k]
            var up = [Double](repeating: 0, count: rowsOf[k] * columns)
            for a in 0..<rowsOf[k] { for r in 0..<ranks[k] { for c in 0..<columns { up[a * columns + c] += bases[k][a * ranks[k] + r] * remainder[r * columns + c] } } }
            remainder = up
        }
        return remainder
    }

    /// The `count` eigenvectors of the largest eigenvalues of a symmetric matrix, as columns
    /// `[n, count]`: cyclic Jacobi rotations until the off-diagonal is negligible.
    static func leadingEigenvectors(_ matrix: [Double], n: Int, count: Int) -> [Double] {
        var a = matrix, v = [Double](repeating: 0, count: n * n)
        for i in 0..<n { v[i * n + i] = 1 }
        for _ in 0..<100 {
            var off = 0.0
            for p in 0..<n { for q in 0..<n where p != q { off += a[p * n + q] * a[p * n + q] } }
            if off < 1e-30 { break }
            for p in 0..<n - 1 {
                for q in p + 1..<n where abs(a[p * n + q]) > 1e-300 {
                    let theta = (a[q * n + q] - a[p * n + p]) / (2 * a[p * n + q])
                    let t = (theta >= 0 ? 1.0 : -1.0) / (abs(theta) + (theta * theta + 1).squareRoot())
                    let c = 1 / (t * t + 1).squareRoot(), s = t * c
                    for k in 0..<n {  // A ← A·J, then Jᵀ·A; V ← V·J
                        let (akp, akq) = (a[k * n + p], a[k * n + q])
                        a[k * n + p] = c * akp - s * akq
                        a[k * n + q] = s * akp + c * akq
                    }
                    for k in 0..<n {
                        let (apk, aqk) = (a[p * n + k], a[q * n + k])
                        a[p * n + k] = c * apk - s * aqk
                        a[q * n + k] = s * apk + c * aqk
                    }
                    for k in 0..<n {
                        let (vkp, vkq) = (v[k * n + p], v[k * n + q])
                        v[k * n + p] = c * vkp - s * vkq
                        v[k * n + q] = s * vkp + c * vkq
                    }
                }
            }
        }
        let order = (0..<n).sorted { a[$0 * n + $0] > a[$1 * n + $1] }
        var result = [Double](repeating: 0, count: n * count)
        for (j, column) in order.prefix(count).enumerated() { for i in 0..<n { result[i * count + j] = v[i * n + column] } }
        return result
    }
}
