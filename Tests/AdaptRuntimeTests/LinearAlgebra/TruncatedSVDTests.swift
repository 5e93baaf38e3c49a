import XCTest
@testable import AdaptRuntime

/// Exact and randomized truncated SVD against matrices whose SVD is known in
/// float64 (Float64Reference.swift), never against LAPACK itself.
final class TruncatedSVDTests: XCTestCase {
    /// σ_k = 1/k on a 96×80 matrix: the rank-r truncation and the singular values.
    func testExactMatchesKnownTruncation() throws {
        let known = KnownSVD(m: 96, n: 80, sigma: (1...80).map { 1 / Double($0) }, seed: 1)
        let w = known.matrix.map(Float.init)
        let svd = try w.withUnsafeBufferPointer { try TruncatedSVD.exact($0, m: 96, n: 80, rank: 6) }
        for k in 0..<6 { XCTAssertEqual(Double(svd.sigma[k]), known.sigma[k], accuracy: 1e-5) }
        let truncation = known.sum(0..<6)
        XCTAssertLessThan(frobeniusDistance(product(svd).map(Float.init), truncation) / frobeniusNorm(truncation), 1e-5)
        let energy = known.sigma[0..<6].reduce(0) { $0 + $1 * $1 } / known.sigma.reduce(0) { $0 + $1 * $1 }
        XCTAssertEqual(svd.capturedEnergy, energy, accuracy: 1e-6)
    }

    /// A wide matrix (out < in) and the smallest triplets (milora).
    func testExactSmallestOnWideMatrix() throws {
        let sigma = (0..<30).map { 3 - 0.1 * Double($0) }
        let known = KnownSVD(m: 30, n: 70, sigma: sigma, seed: 2)
        let w = known.matrix.map(Float.init)
        let svd = try w.withUnsafeBufferPointer { try TruncatedSVD.exact($0, m: 30, n: 70, rank: 4, selection: .smallest) }
        for k in 0..<4 { XCTAssertEqual(Double(svd.sigma[k]), sigma[26 + k], accuracy: 1e-5) }
        let weakest = known.sum(26..<30)
        XCTAssertLessThan(frobeniusDistance(product(svd).map(Float.init), weakest) / frobeniusNorm(weakest), 1e-4)
    }

    /// Halko's randomized SVD: its rank-r error ‖W − W̃_r‖ within 1% of the
    /// optimal ‖W − W_r‖ on a decaying and on a flat spectrum.
    func testRandomizedWithinOnePercentOfExact() throws {
        let spectra: [(String, [Double])] = [
            ("decaying", (1...96).map { 1 / Double($0) }),
            ("flat", (0..<96).map { 1 + 0.001 * Double($0 % 7) }),
        ]
        for (name, sigma) in spectra {
            let known = KnownSVD(m: 128, n: 96, sigma: sigma.sorted(by: >), seed: 3)
            let whole = known.matrix
            let w = whole.map(Float.init)
            let r = 16
            let randomized = try w.withUnsafeBufferPointer {
                try TruncatedSVD.randomized($0, m: 128, n: 96, rank: r, settings: .init(seed: 9))
            }
            let optimal = frobeniusNorm(known.sum(r..<96))
            let error = frobeniusDistance(product(randomized).map(Float.init), whole)
            XCTAssertLessThanOrEqual(error, 1.01 * optimal, "\(name): randomized \(error), optimal \(optimal)")
        }
    }

    /// The benchmark's criterion (DESIGN §8 init-pissa) with the default
    /// settings: σ_k = 1/k, so σ_16/σ_17 is only 17/16, plus noise; the rank-16
    /// part ‖W̃_16 − W_16‖/‖W_16‖ within 1e-3 of the exact truncation, on a
    /// matrix large enough (192×160) that the Krylov basis (96 columns) is a
    /// small part of the space.
    func testRandomizedDefaultsMeetTheRankPartCriterion() throws {
        let (m, n, r) = (192, 160, 16)
        let known = KnownSVD(m: m, n: n, sigma: (1...n).map { 1 / Double($0) }, seed: 5)
        var random = SeededRandom(seed: 6, stream: "noise")
        let w = known.matrix.map { Float($0 + 1e-5 * Double(random.normal(standardDeviation: 1))) }
        let truncation = known.sum(0..<r)
        for seed: UInt64 in [0, 1, 2] {
            let randomized = try w.withUnsafeBufferPointer {
                try TruncatedSVD.randomized($0, m: m, n: n, rank: r, settings: .init(seed: seed))
            }
            let error = frobeniusDistance(product(randomized).map(Float.init), truncation) / frobeniusNorm(truncation)
            XCTAssertLessThanOrEqual(error, 1e-3, "seed \(seed)")
            for k in 0..<r { XCTAssertEqual(Double(randomized.sigma[k]), known.sigma[k], accuracy: 1e-4 * known.sigma[0]) }
        }
    }

    /// A matrix of rank below the Krylov basis: the basis runs out of
    /// directions, the result is still exact and free of NaN.
    func testRandomizedOnLowRankMatrix() throws {
        let known = KnownSVD(m: 200, n: 150, sigma: [3, 2, 1, 0.5], seed: 7)
        let w = known.matrix.map(Float.init)
        let randomized = try w.withUnsafeBufferPointer {
            try TruncatedSVD.randomized($0, m: 200, n: 150, rank: 6, settings: .init(oversampling: 10, powerIterations: 2, seed: 1))
        }
        XCTAssertFalse(randomized.u.contains { !$0.isFinite } || randomized.vt.contains { !$0.isFinite })
        // Exact up to float32 rounding through two power iterations (1.2e-5 with Debian's OpenBLAS
        // 0.3.21 on Haswell kernels); a basis that ran out of directions would be off by O(1).
        XCTAssertLessThan(frobeniusDistance(product(randomized).map(Float.init), known.matrix) / frobeniusNorm(known.matrix), 5e-5)
        for k in 0..<4 { XCTAssertEqual(Double(randomized.sigma[k]), known.sigma[k], accuracy: 1e-5) }
    }

    func testRandomizedIsDeterministicPerSeed() throws {
        let known = KnownSVD(m: 64, n: 48, sigma: (1...48).map { 1 / Double($0) }, seed: 4)
        let w = known.matrix.map(Float.init)
        func run(_ seed: UInt64) throws -> TruncatedSVD {
            try w.withUnsafeBufferPointer { try TruncatedSVD.randomized($0, m: 64, n: 48, rank: 5, settings: .init(oversampling: 4, powerIterations: 1, seed: seed)) }
        }
        let a = try run(7), b = try run(7), c = try run(8)
        XCTAssertEqual(a.u, b.u)
        XCTAssertEqual(a.vt, b.vt)
        XCTAssertEqual(a.sigma, b.sigma)
        XCTAssertNotEqual(a.u, c.u)
    }
}
