import XCTest
@testable import AdaptRuntime
import AdaptTestSupport

/// HOSVD and HOOI against the float64 reference of DecompositionReference.swift
/// (explicit unfoldings, Jacobi SVD, naive mode products).
final class TuckerTests: XCTestCase {
    /// 3 to 6 modes, full modes among them, noise on a low multilinear rank.
    static let cases: [(shape: [Int], ranks: [Int?])] = [
        ([5, 6, 7], [2, 3, 3]),
        ([4, 3, 5, 6], [2, nil, 3, 2]),
        ([3, 4, 2, 5, 3], [2, 2, nil, 3, 2]),
        ([2, 3, 2, 3, 4, 3], [2, 2, 1, 2, 3, 2]),
    ]

    func testHOSVDMatchesReference() throws {
        for (index, (shape, ranks)) in Self.cases.enumerated() {
            let x = Reference.lowTuckerRank(shape: shape, ranks: ranks, noise: 0.05, seed: UInt64(10 + index)).map(Float.init)
            let exact = x.map(Double.init)
            let ours = try x.withUnsafeBufferPointer { try Tucker.hosvd($0, shape: shape, ranks: ranks, threads: 2) }
            let reference = Reference.tucker(exact, shape: shape, ranks: ranks, sweeps: 0)
            let what = "\(shape) ranks \(ranks)"
            XCTAssertEqual(ours.coreShape, reference.coreShape, what)
            let reconstruction = ours.reconstruction()
            XCTAssertLessThan(Reference.distance(reconstruction, reference.reconstruction) / Reference.norm(exact), 1e-9, what)
            XCTAssertEqual(ours.fit, reference.fits[0], accuracy: 1e-9, what)
            XCTAssertLessThan(ours.fit, 1 - 1e-3, "\(what): the noise is not captured")
            XCTAssertEqual(ours.fit, 1 - Reference.distance(exact, reconstruction) / Reference.norm(exact), accuracy: 1e-9)
            // Factors: orthonormal columns spanning the reference's (projectors agree).
            for (k, factor) in ours.factors.enumerated() {
                guard let factor, let columns = reference.factors[k] else {
                    XCTAssertTrue(ours.factors[k] == nil && reference.factors[k] == nil, what)
                    continue
                }
                let n = shape[k], r = ranks[k]!
                for i in 0..<n {
                    for j in 0..<n {
                        var ourProjector = 0.0, referenceProjector = 0.0
                        for c in 0..<r {
                            ourProjector += factor[i * r + c] * factor[j * r + c]
                            referenceProjector += columns[c][i] * columns[c][j]
                        }
                        XCTAssertEqual(ourProjector, referenceProjector, accuracy: 1e-9, "\(what) mode \(k)")
                    }
                }
            }
        }
    }

    /// HOOI sweep for sweep against the reference's, fits never below the
    /// HOSVD's and never decreasing.
    func testHOOIMatchesReferenceAndNeverLosesFit() throws {
        for (index, (shape, ranks)) in Self.cases.enumerated() {
            let x = Reference.lowTuckerRank(shape: shape, ranks: ranks, noise: 0.3, seed: UInt64(20 + index)).map(Float.init)
            let exact = x.map(Double.init)
            let ours = try x.withUnsafeBufferPointer {
                try Tucker.hooi($0, shape: shape, ranks: ranks, sweeps: 4, tolerance: 0, threads: 2)
            }
            let reference = Reference.tucker(exact, shape: shape, ranks: ranks, sweeps: 4)
            let what = "\(shape) ranks \(ranks)"
            XCTAssertEqual(ours.sweeps, 4, what)
            for (got, expected) in zip(ours.fits, reference.fits) { XCTAssertEqual(got, expected, accuracy: 1e-9, what) }
            XCTAssertLessThan(Reference.distance(ours.reconstruction(), reference.reconstruction) / Reference.norm(exact), 1e-8, what)
            for (before, after) in zip(ours.fits, ours.fits.dropFirst()) {
                XCTAssertGreaterThanOrEqual(after, before - 1e-12, "\(what): fits \(ours.fits)")
            }
            XCTAssertGreaterThanOrEqual(ours.fit, ours.fits[0], what)
        }
        // Heavy noise on unequal ranks: HOOI gains on the HOSVD.
        let shape = [8, 9, 10], ranks: [Int?] = [2, 2, 2]
        let x = Reference.lowTuckerRank(shape: shape, ranks: [3, 3, 3], noise: 1, seed: 30).map(Float.init)
        let hooi = try x.withUnsafeBufferPointer { try Tucker.hooi($0, shape: shape, ranks: ranks, sweeps: 20, tolerance: 0) }
        XCTAssertGreaterThan(hooi.fit, hooi.fits[0] + 1e-7, "fits \(hooi.fits)")
    }

    /// The stopping rule: sweeps end once the fit changes by less than the tolerance.
    func testHOOIStopsWhenTheFitSettles() throws {
        let shape = [6, 7, 8], ranks: [Int?] = [2, 3, 2]
        let x = Reference.lowTuckerRank(shape: shape, ranks: ranks, noise: 0.2, seed: 31).map(Float.init)
        let settled = try x.withUnsafeBufferPointer { try Tucker.hooi($0, shape: shape, ranks: ranks, sweeps: 50) }
        XCTAssertLessThan(settled.sweeps, 50)
        let fits = settled.fits
        XCTAssertLessThan(abs(fits[fits.count - 1] - fits[fits.count - 2]), 1e-6)
        for i in 1..<(fits.count - 1) { XCTAssertGreaterThanOrEqual(abs(fits[i] - fits[i - 1]), 1e-6, "fits \(fits)") }
        let none = try x.withUnsafeBufferPointer { try Tucker.hooi($0, shape: shape, ranks: ranks, sweeps: 0) }
        XCTAssertEqual(none.fits.count, 1)
    }

    /// A tensor of exactly the decomposition's multilinear rank comes back
    /// (to float32 rounding of its entries), by HOSVD and by HOOI.
    func testExactMultilinearRankIsRecovered() throws {
        for (index, (shape, ranks)) in Self.cases.enumerated() {
            let exact = Reference.lowTuckerRank(shape: shape, ranks: ranks, noise: 0, seed: UInt64(40 + index))
            let x = exact.map(Float.init)
            for method in ["hosvd", "hooi"] {
                let result = try x.withUnsafeBufferPointer {
                    method == "hosvd" ? try Tucker.hosvd($0, shape: shape, ranks: ranks)
                                      : try Tucker.hooi($0, shape: shape, ranks: ranks)
                }
                let error = Reference.distance(result.reconstruction(), exact) / Reference.norm(exact)
                XCTAssertLessThan(error, 1e-6, "\(method) \(shape)")
                XCTAssertGreaterThan(result.fit, 1 - 1e-6, "\(method) \(shape)")
                XCTAssertEqual(result.capturedEnergy, 1, accuracy: 1e-6)
            }
        }
    }

    /// Tensors large enough for several tiles per unfolding and several Gram
    /// partials: the result is bitwise the same for 1 and 4 threads, and still
    /// the projection of a Gram-eigenvector basis (exact recovery).
    func testTiledAndThreadIndependent() throws {
        let shape = [3, 16, 3000], ranks: [Int?] = [2, 3, 4]
        let exact = Reference.lowTuckerRank(shape: [3, 16, 3000], ranks: ranks, noise: 0, seed: 50)
        let x = exact.map(Float.init)
        let one = try x.withUnsafeBufferPointer { try Tucker.hooi($0, shape: shape, ranks: ranks, sweeps: 2, threads: 1) }
        let four = try x.withUnsafeBufferPointer { try Tucker.hooi($0, shape: shape, ranks: ranks, sweeps: 2, threads: 4) }
        XCTAssertEqual(one.core, four.core)
        XCTAssertEqual(one.factors.map { $0 ?? [] }, four.factors.map { $0 ?? [] })
        XCTAssertEqual(one.fits, four.fits)
        XCTAssertLessThan(Reference.distance(one.reconstruction(threads: 2), exact) / Reference.norm(exact), 1e-6)
        XCTAssertGreaterThan(DenseTensor.tiles(.init(shape: shape, mode: 2)).count, 1)
        XCTAssertGreaterThan(DenseTensor.tiles(.init(shape: shape, mode: 0)).count, 1)
    }
}
