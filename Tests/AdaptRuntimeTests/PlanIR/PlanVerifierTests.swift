import XCTest
import AdaptRuntime

/// The verifier must reject the mistakes a planner could make; a plan it
/// passes is what the interpreter and the emitter rely on.
final class PlanVerifierTests: XCTestCase {
    let x = MatrixView("x", in: .input, indices: ("n", "i"), shape: (.tokens, .fixed(8)))
    let a = MatrixView("A", in: .parameters, offset: .fixed(0), indices: ("r", "i"), shape: (.fixed(2), .fixed(8)))
    let b = MatrixView("B", in: .parameters, offset: .fixed(16), indices: ("o", "r"), shape: (.fixed(4), .fixed(2)))
    let z = MatrixView("z", in: .workspace, indices: ("n", "r"), shape: (.tokens, .fixed(2)))
    let y = MatrixView("y", in: .output, indices: ("n", "o"), shape: (.tokens, .fixed(4)))

    func plan(forward: [[Contraction]], parameters: Int = 24, workspace: Extent = Extent.tokens * 2) -> Plan {
        let pair = PairPlan(layer: 0, module: "m", outFeatures: 4, inFeatures: 8, rank: 2, scale: 1,
                            forward: Program(forward), backward: Program(), materialize: Program())
        let group = GroupPlan(name: "g", structure: "lora", pairs: [pair], layerForwards: [], path: [])
        return Plan(specName: "T", parameters: [ParameterTensor(key: "p", shape: [parameters], offset: 0)],
                    groups: [group], workspace: workspace)
    }

    var good: [[Contraction]] {
        [[Contraction(z, x, a, accumulate: false)], [Contraction(y, z, b, accumulate: true)]]
    }

    func testAGoodPlanPasses() {
        XCTAssertEqual(PlanVerifier.verify(plan(forward: good)), [])
        guard case .gemm(let lowered)? = Contraction(y, z, b, accumulate: true).lowered else {
            return XCTFail("z·Bᵀ should lower to a GEMM")
        }
        XCTAssertEqual([lowered.transLeft, lowered.transRight], [false, true])
        XCTAssertEqual(lowered.k, .fixed(2))
        XCTAssertEqual(lowered.loops, [])
    }

    func testRejectsParametersPastTheBuffer() {
        XCTAssertTrue(PlanVerifier.verify(plan(forward: good, parameters: 20)).contains { $0.contains("exceeds its buffer") })
    }

    func testRejectsWorkspaceTooSmallForN() {
        XCTAssertTrue(PlanVerifier.verify(plan(forward: good, workspace: Extent.tokens)).contains { $0.contains("exceeds its buffer") })
    }

    /// An offset that is in the buffer for n = 1 but falls below it from n = 2 on.
    func testRejectsAnOffsetBelowTheBufferForSomeN() {
        let low = MatrixView("z", in: .workspace, offset: Extent(2, perToken: -2), indices: ("n", "r"), shape: (.tokens, .fixed(2)))
        XCTAssertTrue(PlanVerifier.verify(plan(forward: [[Contraction(low, x, a, accumulate: false)], [Contraction(y, low, b, accumulate: true)]],
                                               workspace: Extent(2, perToken: 2)))
            .contains { $0.contains("exceeds its buffer") })
    }

    func testRejectsMismatchedContractedExtent() {
        let wide = MatrixView("A", in: .parameters, indices: ("r", "i"), shape: (.fixed(2), .fixed(6)))
        XCTAssertTrue(PlanVerifier.verify(plan(forward: [[Contraction(z, x, wide, accumulate: false)]]))
            .contains { $0.contains("extents of mode i differ") })
    }

    func testRejectsAContractionThatIsNotAMatrixProduct() {
        let stray = MatrixView("z", in: .workspace, indices: ("n", "q"), shape: (.tokens, .fixed(2)))
        XCTAssertTrue(PlanVerifier.verify(plan(forward: [[Contraction(stray, x, a, accumulate: false)]]))
            .contains { $0.contains("does not lower") })
    }

    func testRejectsAliasingOutput() {
        let overZ = MatrixView("y", in: .workspace, indices: ("n", "o"), shape: (.tokens, .fixed(4)))
        XCTAssertTrue(PlanVerifier.verify(plan(forward: [[Contraction(z, x, a, accumulate: false)], [Contraction(overZ, z, b, accumulate: true)]],
                                               workspace: Extent.tokens * 4))
            .contains { $0.contains("aliases") })
    }

    func testRejectsDependentContractionsInOneStage() {
        XCTAssertTrue(PlanVerifier.verify(plan(forward: [good.flatMap { $0 }])).contains { $0.contains("not independent") })
    }

    func testExtentArithmeticAndPrinting() {
        let e = Extent(64) + Extent.tokens * 16
        XCTAssertEqual(e.value(tokens: 3), 112)
        XCTAssertEqual(e.description, "16n+64")
        XCTAssertEqual(Extent.tokens.description, "n")
        XCTAssertEqual(Contraction(y, z, b, alpha: 2, accumulate: true).description, "y[n, o] += 2.0·Σ_r z[n, r]·B[o, r]")
    }

    /// `adaptc plan --verbose` is one-to-one: plans whose views differ only in
    /// offset, stride, buffer or slot print differently.
    func testPrintedPlanShowsEveryFieldOfAView() {
        let printed = plan(forward: good).description
        func variant(_ change: (inout TensorView) -> Void) -> String {
            var moved = z
            change(&moved)
            return plan(forward: [[Contraction(moved, x, a, accumulate: false)], [Contraction(y, moved, b, accumulate: true)]]).description
        }
        let variants = [variant { $0.offset = Extent.tokens * 2 }, variant { $0.strides = [.fixed(3), .fixed(1)] },
                        variant { $0.storage = .prepared }, variant { $0.slot = 1 }, variant { $0.extents[0] = Extent(0, perToken: 2) }]
        for (k, text) in variants.enumerated() { XCTAssertNotEqual(text, printed, "variant \(k) prints as the plan") }
        XCTAssertEqual(Set(variants).count, variants.count)
        let wide = MatrixView("z", in: .output, slot: 2, offset: Extent(4, perToken: 8), indices: ("n", "r"), shape: (.tokens, .fixed(2)), rowStride: .fixed(24))
        XCTAssertEqual(Contraction(wide, x, a, alpha: 0.5, accumulate: true).layoutDescription,
                       "z[n:n/24, r:2/1]@output.2+8n+4 += 0.5·Σ_i x[n:n/8, i:8/1]@input+0·A[r:2/8, i:8/1]@parameters+0")
    }
}
