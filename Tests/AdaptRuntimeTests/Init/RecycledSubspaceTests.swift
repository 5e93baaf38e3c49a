import XCTest
@testable import AdaptRuntime
import AdaptTestSupport

/// `RecycledSubspace` (DESIGN §3 `recycle`) against float64 loops over the
/// definition: T LoRA adapters `ΔW_t = s_t·B_t·A_t` built as `U₀·C_t·V₀ᵀ`
/// with a common subspace (U₀ [out, p], V₀ [in, q]) and each adapter's
/// factors in its own gauge and rank. The recycled `U·C_t·Vᵀ` must give back
/// every ΔW_t at ranks (p, q); at a lower rank its subspace must be the
/// leading one of the dense stacked unfolding, computed the naive way.
final class RecycledSubspaceTests: XCTestCase {
    let out = 40, inF = 30, p = 5, q = 4

    private struct Adapters {
        var tasks: [RecycledSubspace.TaskFactors?]
        /// Dense ΔW_t (scale included), float64, only for the checks.
        var deltas: [[Double]?]
    }

    private func naiveProduct(_ a: [Double], _ b: [Double], _ m: Int, _ k: Int, _ n: Int) -> [Double] {
        var c = [Double](repeating: 0, count: m * n)
        for i in 0..<m { for l in 0..<k { for j in 0..<n { c[i * n + j] += a[i * k + l] * b[l * n + j] } } }
        return c
    }

    private func random(_ count: Int, _ rng: inout TestRandom) -> [Double] { rng.floats(count).map(Double.init) }

    /// Four tasks over one subspace (one rank-5 factorisation, one rank 3,
    /// two rank 4 in a random gauge) and a fifth with no adapter.
    private func adapters() -> Adapters {
        var rng = TestRandom(seed: 17)
        let u0 = random(out * p, &rng), v0t = random(q * inF, &rng)  // V₀ᵀ [q, in]
        var tasks: [RecycledSubspace.TaskFactors?] = [], deltas: [[Double]?] = []
        for (t, r) in [4, 5, 3, 4].enumerated() {
            // B_t = U₀·M_t [out, r], A_t = N_t·V₀ᵀ [r, in]: C_t = M_t·N_t, any gauge.
            let m = random(p * r, &rng), n = random(r * q, &rng)
            let b = naiveProduct(u0, m, out, p, r), a = naiveProduct(n, v0t, r, q, inF)
            let scale = [2.0, 0.5, 1.0, 4.0][t]
            tasks.append(.init(b: b, a: a, rank: r, scale: scale))
            deltas.append(naiveProduct(b, a, out, r, inF).map { $0 * scale })
        }
        tasks.append(nil)
        deltas.append(nil)
        return Adapters(tasks: tasks, deltas: deltas)
    }

    private func reconstruct(_ result: RecycledSubspace.Result, task t: Int) -> [Double] {
        let (pr, qr) = (result.outRank, result.inRank)
        let uc = naiveProduct(result.u, result.cores[t], out, pr, qr)
        var vt = [Double](repeating: 0, count: qr * inF)
        for i in 0..<inF { for j in 0..<qr { vt[j * inF + i] = result.v[i * qr + j] } }
        return naiveProduct(uc, vt, out, qr, inF)
    }

    func testSharedSubspaceReproducesEveryTaskAtMatchingRanks() throws {
        let adapters = adapters()
        let result = try RecycledSubspace.decompose(adapters.tasks, outFeatures: out, inFeatures: inF, outRank: p, inRank: q)
        for (t, delta) in adapters.deltas.enumerated() {
            guard let delta else {
                XCTAssertTrue(result.cores[t].allSatisfy { $0 == 0 }, "a task without an adapter starts at zero")
                XCTAssertNil(result.kept[t])
                continue
            }
            let got = reconstruct(result, task: t)
            let largest = delta.map(abs).max()!
            let error = zip(got, delta).map { abs($0 - $1) }.max()!
            XCTAssertLessThan(error / largest, 1e-5, "task \(t): U·C_t·Vᵀ differs from ΔW_t")
            XCTAssertEqual(try XCTUnwrap(result.kept[t]), 1, accuracy: 1e-9, "task \(t) kept")
        }
        // U and V have orthonormal columns.
        for (m, rows, cols) in [(result.u, out, p), (result.v, inF, q)] {
            for i in 0..<cols { for j in 0..<cols {
                let dot = (0..<rows).reduce(0.0) { $0 + m[$1 * cols + i] * m[$1 * cols + j] }
                XCTAssertEqual(dot, i == j ? 1 : 0, accuracy: 1e-9)
            } }
        }
    }

    /// At p = 3 < 5 the out subspace is the leading one of the dense out
    /// unfolding `[ΔW_1 … ΔW_T]` (eigenvectors of Σ_t ΔW_t·ΔW_tᵀ, formed here
    /// from the dense deltas): the projectors agree, and the kept shares are
    /// the captured energy of the dense projection.
    func testTruncatedSubspaceIsTheLeadingOneOfTheDenseUnfolding() throws {
        let adapters = adapters(), pr = 3
        let result = try RecycledSubspace.decompose(adapters.tasks, outFeatures: out, inFeatures: inF, outRank: pr, inRank: q)
        var gram = [Double](repeating: 0, count: out * out)
        for delta in adapters.deltas.compactMap({ $0 }) {
            for i in 0..<out { for j in 0..<out { for k in 0..<inF { gram[i * out + j] += delta[i * inF + k] * delta[j * inF + k] } } }
        }
        let (_, vectors) = try Float64LinearAlgebra.symmetricEigen(gram, n: out)
        for i in 0..<out { for j in 0..<out {
            let dense = (0..<pr).reduce(0.0) { $0 + vectors[i * out + $1] * vectors[j * out + $1] }
            let recycled = (0..<pr).reduce(0.0) { $0 + result.u[i * pr + $1] * result.u[j * pr + $1] }
            XCTAssertEqual(recycled, dense, accuracy: 1e-8, "projector (\(i), \(j))")
        } }
        for (t, delta) in adapters.deltas.enumerated() {
            guard let delta else { continue }
            // ‖U·Uᵀ·ΔW_t‖² / ‖ΔW_t‖² with the dense projector (V spans ΔW_t's rows exactly at q).
            var captured = 0.0
            for k in 0..<inF {
                for c in 0..<pr {
                    let coefficient = (0..<out).reduce(0.0) { $0 + vectors[$1 * out + c] * delta[$1 * inF + k] }
                    captured += coefficient * coefficient
                }
            }
            let total = delta.reduce(0) { $0 + $1 * $1 }
            XCTAssertEqual(try XCTUnwrap(result.kept[t]), captured / total, accuracy: 1e-9, "task \(t) kept")
            XCTAssertLessThan(try XCTUnwrap(result.kept[t]), 1 - 1e-6, "rank 3 cannot keep all of task \(t)")
        }
    }

    /// More directions asked for than the adapters span: the extra columns are zero, ΔW_t still exact.
    func testRanksAboveTheSubspaceGiveZeroColumns() throws {
        let adapters = adapters()
        let result = try RecycledSubspace.decompose(adapters.tasks, outFeatures: out, inFeatures: inF, outRank: 7, inRank: 6)
        let delta = try XCTUnwrap(adapters.deltas[1])
        let got = reconstruct(result, task: 1)
        XCTAssertLessThan(zip(got, delta).map { abs($0 - $1) }.max()! / delta.map(abs).max()!, 1e-5)
        XCTAssertTrue((0..<out).allSatisfy { result.u[$0 * 7 + 6] == 0 }, "a 7th out direction does not exist")
    }
}
