import AdaptTestSupport
import XCTest
@testable import AdaptRuntime

/// TT-SVD against `NaiveTTSVD` (float64 Jacobi SVD of each unfolding, no
/// LAPACK, no Gram matrix, Tests/AdaptTestSupport) on random tensors of 3–6
/// modes: low-rank trains plus noise, odd sizes, streamed in scattered slices.
final class TTSVDTests: XCTestCase {
    /// A random train with `ranks` plus Gaussian-ish noise of relative size `noise`.
    static func lowRankPlusNoise(_ sizes: [Int], ranks: [Int], noise: Double, seed: UInt64) -> [Double] {
        var random = TestRandom(seed: seed)
        let full = [1] + ranks + [1]
        var cores: [[Double]] = []
        for k in sizes.indices {
            cores.append((0..<(full[k] * sizes[k] * full[k + 1])).map { _ in Double(random.uniform()) })
        }
        let train = TTSVD(modeSizes: sizes, cores: cores, bonds: ranks.map {
            TTSVD.Bond(rank: $0, cap: $0, discarded: 0, method: .gram)
        }, norm: 0, bound: nil)
        var tensor = train.full()
        let scale = (tensor.reduce(0.0) { $0 + $1 * $1 } / Double(tensor.count)).squareRoot()
        for k in tensor.indices { tensor[k] += noise * scale * Double(random.uniform()) * 3.0.squareRoot() }
        return tensor
    }

    /// The first unfolding split into `parts` slices of scattered columns
    /// (column c in slice c·7 mod parts), as the stacked weights stream.
    struct ScatteredSlices: UnfoldingSlices {
        let tensor: [Double]
        let rows: Int
        let parts: Int
        var columns: Int { tensor.count / rows }
        var sliceCount: Int { parts }
        func slice(_ index: Int) throws -> (matrix: [Double], columnIndex: [Int]) {
            let mine = (0..<columns).filter { ($0 * 7) % parts == index }
            var matrix = [Double](repeating: 0, count: rows * mine.count)
            for i in 0..<rows { for (c, column) in mine.enumerated() { matrix[i * mine.count + c] = tensor[i * columns + column] } }
            return (matrix, mine)
        }
    }

    static func relativeDistance(_ a: [Double], _ b: [Double]) -> Double {
        let norm = b.reduce(0.0) { $0 + $1 * $1 }.squareRoot()
        return zip(a, b).reduce(0.0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) }.squareRoot() / max(norm, .leastNormalMagnitude)
    }

    static func maxRanks(_ sizes: [Int]) -> [Int] {
        (1..<sizes.count).map { min(sizes[..<$0].reduce(1, *), sizes[$0...].reduce(1, *)) }
    }

    struct Case { var sizes: [Int]; var ranks: [Int]; var caps: [Int] }
    let cases = [
        Case(sizes: [6, 5, 7], ranks: [2, 3], caps: [3, 4]),
        Case(sizes: [3, 8, 4, 5], ranks: [2, 4, 3], caps: [2, 5, 3]),
        Case(sizes: [4, 3, 2, 5, 3], ranks: [3, 3, 2, 2], caps: [4, 4, 3, 3]),
        Case(sizes: [2, 3, 4, 3, 2, 5], ranks: [2, 2, 3, 2, 2], caps: [2, 3, 3, 2, 2]),
        // A large middle mode: the later unfoldings are taller than wide (Gram on the column side, then QR).
        Case(sizes: [3, 40, 2, 2], ranks: [2, 3, 2], caps: [3, 4, 2]),
    ]

    /// At fixed ranks TT-SVD equals the naive float64 TT-SVD (1e-4 relative
    /// to ‖T‖), streamed or whole; the reported error is the true one.
    func testMatchesNaiveTTSVDAtTheSameRanks() throws {
        for (n, c) in cases.enumerated() {
            let tensor = Self.lowRankPlusNoise(c.sizes, ranks: c.ranks, noise: 0.05, seed: UInt64(n + 1))
            let reference = NaiveTTSVD.approximate(tensor, sizes: c.sizes, caps: c.caps)
            for parts in [1, 5] {
                let train = try TTSVD.decompose(ScatteredSlices(tensor: tensor, rows: c.sizes[0], parts: parts),
                                                modeSizes: c.sizes, caps: c.caps)
                XCTAssertEqual(train.ranks, [1] + reference.ranks + [1], "\(c.sizes)")
                XCTAssertLessThan(Self.relativeDistance(train.full(), reference.tensor), 1e-4, "\(c.sizes), \(parts) slices")
                let error = Self.relativeDistance(train.full(), tensor) * train.norm
                XCTAssertEqual(train.error, error, accuracy: 1e-6 * train.norm, "\(c.sizes)")
            }
        }
    }

    /// With ε the error stays within ε‖T‖, the ranks are those the bound picks
    /// (as the naive one picks them), and the tensor is the naive one's.
    func testToleranceBoundAndRanks() throws {
        for (n, c) in cases.enumerated() {
            let tensor = Self.lowRankPlusNoise(c.sizes, ranks: c.ranks, noise: 0.02, seed: UInt64(10 + n))
            let caps = Self.maxRanks(c.sizes)
            for epsilon in [0.01, 0.05, 0.3] {
                let train = try TTSVD.decompose(DenseUnfolding(tensor, rows: c.sizes[0]), modeSizes: c.sizes,
                                                caps: caps, tolerance: epsilon)
                let reference = NaiveTTSVD.approximate(tensor, sizes: c.sizes, caps: caps, tolerance: epsilon)
                XCTAssertEqual(train.ranks, [1] + reference.ranks + [1], "\(c.sizes) ε \(epsilon)")
                let error = Self.relativeDistance(train.full(), tensor)
                XCTAssertLessThanOrEqual(error, epsilon, "\(c.sizes) ε \(epsilon)")
                XCTAssertEqual(train.bound!, epsilon * train.norm, accuracy: 1e-9 * train.norm)
                XCTAssertLessThan(Self.relativeDistance(train.full(), reference.tensor), 1e-4, "\(c.sizes) ε \(epsilon)")
                for bond in train.bonds { XCTAssertLessThanOrEqual(bond.rank, bond.cap) }
            }
        }
    }

    /// An exactly low-rank train comes back exactly at its ranks, and a
    /// tolerance finds those ranks on its own.
    func testExactRecoveryOfALowRankTrain() throws {
        let sizes = [5, 4, 6, 3, 4], ranks = [2, 3, 3, 2]
        let tensor = Self.lowRankPlusNoise(sizes, ranks: ranks, noise: 0, seed: 99)
        let train = try TTSVD.decompose(ScatteredSlices(tensor: tensor, rows: 5, parts: 4), modeSizes: sizes, caps: ranks)
        XCTAssertLessThan(Self.relativeDistance(train.full(), tensor), 1e-10)
        let found = try TTSVD.decompose(DenseUnfolding(tensor, rows: 5), modeSizes: sizes, caps: Self.maxRanks(sizes),
                                        tolerance: 1e-6)
        XCTAssertEqual(found.ranks, [1] + ranks + [1])
        XCTAssertLessThan(Self.relativeDistance(found.full(), tensor), 1e-10)
        XCTAssertNotNil(found.bound)
        // Caps below the ranks the tolerance needs: no bound, and the bonds that fell short are named.
        let capped = try TTSVD.decompose(DenseUnfolding(tensor, rows: 5), modeSizes: sizes, caps: [2, 1, 3, 2], tolerance: 1e-6)
        XCTAssertNil(capped.bound)
        XCTAssertEqual(capped.overCap, [1])
        XCTAssertEqual(capped.reversed().overCap, [2])
    }

    /// `reversed()` is the same tensor with its modes reversed, so a right-to-left
    /// sweep (TT-SVD of the reversed tensor, turned back) equals the naive
    /// right-to-left TT-SVD.
    func testReversedTrainIsTheRightToLeftSweep() throws {
        let sizes = [4, 3, 5, 6], caps = [3, 3, 2]
        let tensor = Self.lowRankPlusNoise(sizes, ranks: [2, 3, 2], noise: 0.05, seed: 7)
        let flipped = NaiveTTSVD.reversedModes(tensor, sizes: sizes)
        let train = try TTSVD.decompose(DenseUnfolding(flipped, rows: 6), modeSizes: sizes.reversed(),
                                        caps: caps.reversed()).reversed()
        XCTAssertEqual(train.modeSizes, sizes)
        let reference = NaiveTTSVD.reversedModes(NaiveTTSVD.approximate(flipped, sizes: sizes.reversed(), caps: caps.reversed()).tensor,
                                                 sizes: sizes.reversed())
        XCTAssertLessThan(Self.relativeDistance(train.full(), reference), 1e-4)
    }

    /// Where the randomized SVD is cheaper (a wide, exactly low-rank
    /// remainder) it is chosen, and it recovers the matrix.
    func testRandomizedStepOnAWideLowRankRemainder() throws {
        let (m, n, r) = (200, 2000, 3)
        XCTAssertEqual(TTSVD.cheaperMethod(m: m, n: n, cap: r, budget: nil, randomized: .init(oversampling: 4, powerIterations: 1)),
                       .randomized)
        XCTAssertEqual(TTSVD.cheaperMethod(m: 8, n: 40, cap: 2, budget: nil, randomized: .init()), .gram)
        let c = Self.lowRankPlusNoise([m, n], ranks: [r], noise: 0, seed: 3)
        let step = try TTSVD.truncate(c, m: m, n: n, cap: r, budget: nil, randomized: .init(oversampling: 4, powerIterations: 1))
        XCTAssertEqual(step.method, .randomized)
        var back = [Double](repeating: 0, count: m * n)
        for i in 0..<m { for k in 0..<r { for j in 0..<n { back[i * n + j] += step.core[i * r + k] * step.remainder[k * n + j] } } }
        XCTAssertLessThan(Self.relativeDistance(back, c), 1e-5)
    }

    /// The float32 path (`decompose(_: UnsafeBufferPointer<Float>, …)`: the
    /// tensor held once in float32, float32 Gram tiles summed in float64) equals
    /// the naive float64 TT-SVD of the same float32 values to 1e-4 relative at
    /// fixed ranks and with a tolerance, and reports its error to 1e-4 of ‖T‖.
    func testFloat32PathMatchesNaiveTTSVD() throws {
        for (n, c) in cases.enumerated() {
            let floats = Self.lowRankPlusNoise(c.sizes, ranks: c.ranks, noise: 0.05, seed: UInt64(n + 1)).map(Float.init)
            let tensor = floats.map(Double.init)
            for epsilon in [nil, 0.05] as [Double?] {
                let caps = epsilon == nil ? c.caps : Self.maxRanks(c.sizes)
                let reference = NaiveTTSVD.approximate(tensor, sizes: c.sizes, caps: caps, tolerance: epsilon)
                let train = try floats.withUnsafeBufferPointer {
                    try TTSVD.decompose($0, modeSizes: c.sizes, caps: caps, tolerance: epsilon, threads: 2)
                }
                XCTAssertEqual(train.ranks, [1] + reference.ranks + [1], "\(c.sizes) ε \(String(describing: epsilon))")
                XCTAssertLessThan(Self.relativeDistance(train.full(), reference.tensor), 1e-4, "\(c.sizes)")
                let error = Self.relativeDistance(train.full(), tensor) * train.norm
                XCTAssertEqual(train.error, error, accuracy: 1e-4 * train.norm, "\(c.sizes)")
                if let epsilon { XCTAssertLessThanOrEqual(error, epsilon * train.norm * (1 + 1e-6)) }
            }
        }
    }

    /// An unfolding where the randomized SVD is cheaper (the second, [3·200,
    /// 300] at rank 3: 49 Mflop against the Gram's 297 Mflop) takes it, and at
    /// equal ranks the train equals the float64 Gram TT-SVD (itself checked
    /// against the naive one above) to 1e-4 relative, its error to 1e-4 of
    /// ‖T‖ (low rank plus 5 % noise: a clear gap after σ₃, where block Krylov
    /// with q = 2 converges far below that). The bits are the same for 1, 2
    /// and 3 threads.
    func testFloat32PathTakesTheRandomizedSVDWhereCheaper() throws {
        let sizes = [6, 200, 300], caps = [3, 3]
        let floats = Self.lowRankPlusNoise(sizes, ranks: [3, 3], noise: 0.05, seed: 21).map(Float.init)
        let tensor = floats.map(Double.init)
        // The float64 path with a block too wide for the randomized SVD: Gram matrices throughout.
        let reference = try TTSVD.decompose(DenseUnfolding(tensor, rows: 6), modeSizes: sizes, caps: caps,
                                            randomized: .init(oversampling: 1000))
        let trains = try [1, 2, 3].map { threads in
            try floats.withUnsafeBufferPointer { try TTSVD.decompose($0, modeSizes: sizes, caps: caps, threads: threads) }
        }
        XCTAssertEqual(trains[0].bonds.map(\.method), [.gram, .randomized])
        XCTAssertEqual(reference.bonds.map(\.method), [.gram, .gram])
        let full = trains[0].full()
        XCTAssertLessThan(Self.relativeDistance(full, reference.full()), 1e-4)
        XCTAssertEqual(trains[0].error, Self.relativeDistance(full, tensor) * trains[0].norm, accuracy: 1e-4 * trains[0].norm)
        XCTAssertEqual(trains[0].error, reference.error, accuracy: 1e-4 * reference.norm)
        XCTAssertEqual(trains[0].cores, trains[1].cores)
        XCTAssertEqual(trains[0].cores, trains[2].cores)
    }

    /// The randomized SVD's grouped sweeps (`threads:` given, as the float32
    /// TT-SVD calls it) give the same triplets as the sequential sweep up to
    /// float32 rounding of the partial sums, and the same bits for any thread count.
    func testRandomizedSVDGroupedSweepsMatchTheSequentialOne() throws {
        let (m, n, r) = (3000, 200, 4)
        let w = Self.lowRankPlusNoise([m, n], ranks: [r], noise: 0.01, seed: 31).map(Float.init)
        let settings = TruncatedSVD.Randomized()
        let sequential = try w.withUnsafeBufferPointer { try TruncatedSVD.randomized($0, m: m, n: n, rank: r, settings: settings) }
        let grouped = try [1, 2, 3].map { threads in
            try w.withUnsafeBufferPointer { try TruncatedSVD.randomized($0, m: m, n: n, rank: r, settings: settings, threads: threads) }
        }
        XCTAssertEqual(grouped[0].u, grouped[1].u)
        XCTAssertEqual(grouped[0].vt, grouped[2].vt)
        for k in 0..<r { XCTAssertEqual(grouped[0].sigma[k], sequential.sigma[k], accuracy: 1e-5 * sequential.sigma[0]) }
        // The same rank-r product U·Σ·Vᵀ (the signs of the pairs may differ only together).
        func product(_ s: TruncatedSVD) -> [Double] {
            (0..<(m * n)).map { e in (0..<r).reduce(0.0) { $0 + Double(s.u[(e / n) * r + $1] * s.sigma[$1] * s.vt[$1 * n + e % n]) } }
        }
        XCTAssertLessThan(Self.relativeDistance(product(grouped[0]), product(sequential)), 1e-5)
    }

    /// The float32 Gram (tiles of at most `gramTileDepth` terms summed in
    /// float64) equals the float64 definition on both sides, with several
    /// tiles and groups, and its bits do not depend on the thread count.
    func testFloat32TiledGramIsTheGramWhateverTheThreads() {
        let (m, n) = (40, 3 * FloatMatrix.gramTileDepth + 17)
        var random = TestRandom(seed: 8)
        let x = (0..<(m * n)).map { _ in random.uniform() }
        for side in [FloatMatrix.Side.rows, .columns] {
            let (rows, width) = side == .rows ? (m, n) : (n, m)
            let grams = [1, 2, 3].map { threads in
                x.withUnsafeBufferPointer { FloatMatrix.gram($0, m: rows, n: width, side: side, threads: threads) }
            }
            XCTAssertEqual(grams[0], grams[1])
            XCTAssertEqual(grams[0], grams[2])
            let size = m  // the short side's Gram, [m, m], in both layouts
            func dot(_ i: Int, _ j: Int) -> Double {
                (0..<n).reduce(0.0) { sum, k in
                    let (a, b) = side == .rows ? (x[i * n + k], x[j * n + k]) : (x[k * m + i], x[k * m + j])
                    return sum + Double(a) * Double(b)
                }
            }
            let diagonal = (0..<size).map { dot($0, $0) }
            // Float32 sums of ≤ 4096 terms: within 1e-5 of the Cauchy–Schwarz scale √(G_ii·G_jj).
            for i in 0..<size { for j in 0..<size {
                XCTAssertEqual(grams[0][i * size + j], dot(i, j), accuracy: 1e-5 * (diagonal[i] * diagonal[j]).squareRoot(),
                               "\(side) [\(i), \(j)]")
            } }
        }
    }

    /// The tiled Gram (from 256 rows) equals the float64 definition, and its
    /// bits do not depend on the thread count.
    func testTiledGramIsTheGramWhateverTheThreads() {
        let (rows, width) = (300, 37)
        var random = TestRandom(seed: 5)
        let x = (0..<(rows * width)).map { _ in Double(random.uniform()) }
        var grams: [[Double]] = []
        for threads in [1, 2, 3] {
            var gram = [Double](repeating: 0.5, count: rows * rows)
            Float64LinearAlgebra.accumulateRowGram(x, rows: rows, width: width, into: &gram, threads: threads)
            grams.append(gram)
        }
        XCTAssertEqual(grams[0], grams[1])
        XCTAssertEqual(grams[0], grams[2])
        for i in stride(from: 0, to: rows, by: 7) { for j in stride(from: 0, to: rows, by: 11) {
            var dot = 0.5
            for k in 0..<width { dot += x[i * width + k] * x[j * width + k] }
            XCTAssertEqual(grams[0][i * rows + j], dot, accuracy: 1e-12, "[\(i), \(j)]")
        } }
    }
}
