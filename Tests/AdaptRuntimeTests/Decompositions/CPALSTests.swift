import XCTest
@testable import AdaptRuntime
import AdaptTestSupport

/// CP-ALS against the textbook float64 ALS of DecompositionReference.swift
/// (explicit MTTKRP, Gaussian elimination, no normalisation, fit from the
/// explicit reconstruction), from the same HOSVD start.
final class CPALSTests: XCTestCase {
    /// 3 to 6 modes; the third has R above a mode's size (a padded start).
    static let cases: [(shape: [Int], rank: Int)] = [
        ([5, 6, 7], 3),
        ([4, 3, 5, 6], 2),
        ([3, 4, 2, 5, 3], 3),
        ([2, 3, 2, 3, 4, 3], 2),
    ]

    func testMatchesReferenceALSFromTheSameStart() throws {
        for (index, (shape, rank)) in Self.cases.enumerated() {
            let x = Reference.lowCPRank(shape: shape, rank: rank, noise: 0.1, seed: UInt64(60 + index)).map(Float.init)
            let exact = x.map(Double.init)
            let start = try x.withUnsafeBufferPointer { try CPALS.start($0, shape: shape, rank: rank, seed: 7) }
            let ours = try x.withUnsafeBufferPointer {
                try CPALS.decompose($0, shape: shape, settings: .init(rank: rank, iterations: 12, tolerance: 0, seed: 7),
                                    threads: 2)
            }
            let reference = Reference.als(exact, shape: shape, rank: rank, start: start, sweeps: 12)
            let what = "\(shape) R \(rank)"
            XCTAssertEqual(ours.sweeps, 12, what)
            for (got, expected) in zip(ours.fits, reference.fits) { XCTAssertEqual(got, expected, accuracy: 1e-8, what) }
            let expected = Reference.cpReconstruction(reference.factors, shape: shape, rank: rank)
            XCTAssertLessThan(Reference.distance(ours.reconstruction(), expected) / Reference.norm(exact), 1e-7, what)
            // The reported fit is the fit of what it returns.
            XCTAssertEqual(ours.fit, 1 - Reference.distance(ours.reconstruction(), exact) / Reference.norm(exact), accuracy: 1e-9)
            let captured = Reference.norm(ours.reconstruction()) / Reference.norm(exact)
            XCTAssertEqual(ours.capturedEnergy, captured * captured, accuracy: 1e-9)
        }
    }

    /// Run to its stopping rule, CP-ALS reaches the fit the reference reaches
    /// in as many sweeps, and its fit never decreases.
    func testReachesTheReferenceFitAndNeverLosesFit() throws {
        for (index, (shape, rank)) in Self.cases.enumerated() {
            let x = Reference.lowCPRank(shape: shape, rank: rank + 1, noise: 0.2, seed: UInt64(70 + index)).map(Float.init)
            let ours = try x.withUnsafeBufferPointer {
                try CPALS.decompose($0, shape: shape, settings: .init(rank: rank, seed: 3))
            }
            let start = try x.withUnsafeBufferPointer { try CPALS.start($0, shape: shape, rank: rank, seed: 3) }
            let reference = Reference.als(x.map(Double.init), shape: shape, rank: rank, start: start, sweeps: ours.sweeps)
            let what = "\(shape) R \(rank): fits \(ours.fits.suffix(3))"
            XCTAssertGreaterThanOrEqual(ours.fit, reference.fits.last! - 1e-9, what)
            for (before, after) in zip(ours.fits, ours.fits.dropFirst()) { XCTAssertGreaterThanOrEqual(after, before - 1e-12, what) }
            // It stopped by the rule: by the tolerance, or at the iteration cap.
            let settled = ours.sweeps >= 2 && abs(ours.fits[ours.sweeps - 1] - ours.fits[ours.sweeps - 2]) < 1e-6
            XCTAssertTrue(settled || ours.sweeps == 100, what)
            for i in 1..<max(ours.sweeps - 1, 1) { XCTAssertGreaterThanOrEqual(abs(ours.fits[i] - ours.fits[i - 1]), 1e-6, what) }
        }
        let x = Reference.lowCPRank(shape: [5, 6, 7], rank: 4, noise: 0.3, seed: 79).map(Float.init)
        let capped = try x.withUnsafeBufferPointer {
            try CPALS.decompose($0, shape: [5, 6, 7], settings: .init(rank: 3, iterations: 3, tolerance: 0))
        }
        XCTAssertEqual(capped.sweeps, 3)
    }

    /// A tensor of exact CP rank R comes back (compared as tensors: the
    /// factors are unique only up to scaling and permutation).
    func testExactRankIsRecovered() throws {
        for (index, (shape, rank)) in Self.cases.enumerated() {
            let exact = Reference.lowCPRank(shape: shape, rank: rank, noise: 0, seed: UInt64(80 + index))
            let x = exact.map(Float.init)
            let result = try x.withUnsafeBufferPointer {
                try CPALS.decompose($0, shape: shape, settings: .init(rank: rank, iterations: 2000, tolerance: 1e-12))
            }
            let error = Reference.distance(result.reconstruction(), exact) / Reference.norm(exact)
            XCTAssertLessThan(error, 1e-5, "\(shape) R \(rank) after \(result.sweeps) sweeps")
            // With the weights folded back at scale s: s·Σ_c ∏ F_k = X̂.
            let scale = 0.25
            let folded = Reference.cpReconstruction(result.balancedFactors(scale: scale), shape: shape, rank: rank).map { $0 * scale }
            XCTAssertLessThan(Reference.distance(folded, result.reconstruction()) / Reference.norm(exact), 1e-12)
        }
    }

    /// The same seed gives bitwise the same result, for 1 and 4 threads, on a
    /// tensor with several tiles per product; another seed changes only a
    /// padded start. R above a mode's size pads that mode.
    func testDeterministicForASeed() throws {
        let shape = [16, 3, 3000], rank = 4
        let x = Reference.lowCPRank(shape: shape, rank: rank, noise: 0.1, seed: 90).map(Float.init)
        func run(seed: UInt64, threads: Int) throws -> CPALS.Decomposition {
            try x.withUnsafeBufferPointer {
                try CPALS.decompose($0, shape: shape, settings: .init(rank: rank, iterations: 5, seed: seed), threads: threads)
            }
        }
        let one = try run(seed: 5, threads: 1), four = try run(seed: 5, threads: 4), again = try run(seed: 5, threads: 4)
        XCTAssertEqual(one.factors, four.factors)
        XCTAssertEqual(one.weights, four.weights)
        XCTAssertEqual(one.fits, four.fits)
        XCTAssertEqual(four.factors, again.factors)
        let other = try run(seed: 6, threads: 1)
        XCTAssertNotEqual(one.factors, other.factors, "mode 1 (size 3 < R 4) is padded from the seed")
        let start = try x.withUnsafeBufferPointer { try CPALS.start($0, shape: shape, rank: rank, seed: 5) }
        let otherStart = try x.withUnsafeBufferPointer { try CPALS.start($0, shape: shape, rank: rank, seed: 6) }
        XCTAssertNotEqual(start[1], otherStart[1])
        XCTAssertEqual(start[0], otherStart[0])
        XCTAssertEqual(start[2], otherStart[2])
        // The start's unpadded columns are the leading singular vectors: orthonormal.
        for k in [0, 2] {
            let gram = CPALS.gram(start[k], rank: rank)
            for c in 0..<rank { for d in 0..<rank { XCTAssertEqual(gram[c * rank + d], c == d ? 1 : 0, accuracy: 1e-12) } }
        }
    }
}
