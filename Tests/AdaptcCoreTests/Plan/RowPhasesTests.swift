import XCTest
@testable import AdaptcCore
import AdaptRuntime

/// Backward in two phases (`RowPhases`): which steps run on row blocks, and
/// the pieces a sum over rows is cut into, checked element by element.
final class RowPhasesTests: XCTestCase {
    /// `dB[o.0, o.1, r] += Σ_n dy[n, o.0, o.1]·t[n, r]`, a layer's gradient of its out-side factor.
    static let dB: Contraction = {
        let output = TensorView("dB", in: .gradients, offset: .fixed(100), modes: ["o.0", "o.1", "r"],
                                extents: [.fixed(6), .fixed(400), .fixed(3)])
        let dy = TensorView("dy", in: .outputGradient, modes: ["n", "o.0", "o.1"], extents: [.tokens, .fixed(6), .fixed(400)])
        let t = TensorView("t", in: .workspace, offset: Extent(5, perToken: 2), modes: ["n", "r"], extents: [.tokens, .fixed(3)])
        return Contraction(output, dy, t, accumulate: true)
    }()

    /// `dA[r, i.0, i.1] += Σ_n dt[n, r]·x[n, i.0, i.1]`: the cut mode (i.0) is not the output's outermost.
    static let dA: Contraction = {
        let output = TensorView("dA", in: .preparedGradients, modes: ["r", "i.0", "i.1"], extents: [.fixed(3), .fixed(5), .fixed(512)])
        let dt = TensorView("dt", in: .workspace, modes: ["n", "r"], extents: [.tokens, .fixed(3)])
        let x = TensorView("x", in: .input, modes: ["n", "i.0", "i.1"], extents: [.tokens, .fixed(5), .fixed(512)])
        return Contraction(output, dt, x, accumulate: true)
    }()

    /// Every (output, a, b) address triple the contraction touches for n tokens, as a sorted list.
    static func triples(_ c: Contraction, tokens n: Int) -> [[Int]] {
        let views = [c.output, c.a, c.b!]
        var extent: [String: Int] = [:]
        for v in views { for (m, e) in zip(v.modes, v.extents) { extent[m] = e.value(tokens: n) } }
        let modes = extent.keys.sorted()
        var result: [[Int]] = []
        var index = [Int](repeating: 0, count: modes.count)
        while true {
            result.append(views.map { v in
                zip(v.modes, v.strides).reduce(v.offset.value(tokens: n)) { $0 + index[modes.firstIndex(of: $1.0)!] * $1.1.value(tokens: n) }
            })
            var k = modes.count - 1
            while k >= 0 {
                index[k] += 1
                if index[k] < extent[modes[k]]! { break }
                index[k] = 0
                k -= 1
            }
            if k < 0 { break }
        }
        return result.sorted { $0.lexicographicallyPrecedes($1) }
    }

    func testPiecesCoverTheSumOnceAlongTheLargestOperand() throws {
        for (c, cut, count) in [(Self.dB, "o.0", 2), (Self.dA, "i.0", 2), (Self.dA, "i.0", 3), (Self.dB, "o.0", 9)] {
            let pieces = RowPhases.pieces(c, count: count)
            let extent = c.output.extent(of: cut)!.constant, expected = min(count, extent)
            XCTAssertEqual(pieces.count, expected, "\(c)")
            XCTAssertTrue(pieces.allSatisfy { $0.lowered != nil }, "\(c)")
            XCTAssertEqual(pieces.map { $0.output.extent(of: cut)!.constant }.reduce(0, +), extent, "\(c)")
            let union = pieces.flatMap { Self.triples($0, tokens: 3) }.sorted { $0.lexicographicallyPrecedes($1) }
            XCTAssertEqual(union, Self.triples(c, tokens: 3), "\(c): the pieces do not cover the sum exactly once")
            // Disjoint outputs: one stage holds them all.
            for (i, p) in pieces.enumerated() {
                for q in pieces[(i + 1)...] { XCTAssertFalse(p.output.mayOverlap(q.output), "\(c)") }
            }
            XCTAssertEqual(NetworkLowering.stages(pieces).count, 1, "\(c)")
        }
    }

    /// The sums are cut into pieces of about equal work: the smallest in two,
    /// one four times its work in eight.
    func testPiecesHaveAboutEqualWork() {
        let t = TensorView("t", in: .workspace, modes: ["n", "r"], extents: [.tokens, .fixed(3)])
        let x = TensorView("x", in: .input, modes: ["n", "i"], extents: [.tokens, .fixed(4096)])
        let a = TensorView("A", in: .parameters, modes: ["r", "i"], extents: [.fixed(3), .fixed(4096)])
        let wide = TensorView("t4", in: .workspace, offset: Extent(0, perToken: 3), modes: ["n", "R"], extents: [.tokens, .fixed(12)])
        let dA = TensorView("dA", in: .gradients, modes: ["r", "i"], extents: [.fixed(3), .fixed(4096)])
        let dA4 = TensorView("dA4", in: .gradients, offset: .fixed(3 * 4096), modes: ["R", "i"], extents: [.fixed(12), .fixed(4096)])
        let program = RowPhases.program([Contraction(t, x, a, accumulate: false), Contraction(dA, t, x, accumulate: true),
                                         Contraction(dA4, wide, x, accumulate: true)])
        let sums = program.stages.dropFirst(program.rowLocalStages).joined()
        XCTAssertEqual(sums.filter { $0.output.name == "dA" }.count, 2)
        XCTAssertEqual(sums.filter { $0.output.name == "dA4" }.count, 8)
        let work = Set(sums.map { $0.flops.value(tokens: 64) })
        XCTAssertEqual(work.count, 1, "pieces of unequal work: \(work)")
    }

    /// Small outputs, and steps that are not sums over rows, stay whole.
    func testSmallOutputsAndRowLocalStepsStayWhole() {
        var small = Self.dB
        small.output.extents = [.fixed(2), .fixed(4), .fixed(3)]
        small.output.strides = TensorView.rowMajorStrides(small.output.extents)
        small.a.extents = [.tokens, .fixed(2), .fixed(4)]
        small.a.strides = TensorView.rowMajorStrides(small.a.extents)
        XCTAssertEqual(RowPhases.pieces(small, count: 2).count, 1)
        let dx = Contraction(TensorView("dx", in: .inputGradient, modes: ["n", "i"], extents: [.tokens, .fixed(4096)]),
                             TensorView("dt", in: .workspace, modes: ["n", "r"], extents: [.tokens, .fixed(3)]),
                             TensorView("A", in: .parameters, modes: ["r", "i"], extents: [.fixed(3), .fixed(4096)]), accumulate: true)
        XCTAssertTrue(dx.isRowLocal)
        XCTAssertEqual(RowPhases.pieces(dx, count: 2).count, 1)
        XCTAssertFalse(Self.dB.isRowLocal, "a sum over rows is not row-local")
    }

    /// Row-local steps go first unless they read what a sum over rows writes.
    func testRowLocalStepsGoFirstUnlessTheyDependOnASum() {
        let t = TensorView("t", in: .workspace, modes: ["n", "r"], extents: [.tokens, .fixed(3)])
        let x = TensorView("x", in: .input, modes: ["n", "i"], extents: [.tokens, .fixed(64)])
        let a = TensorView("A", in: .parameters, modes: ["r", "i"], extents: [.fixed(3), .fixed(64)])
        let dA = TensorView("dA", in: .gradients, modes: ["r", "i"], extents: [.fixed(3), .fixed(64)])
        let dx = TensorView("dx", in: .inputGradient, modes: ["n", "i"], extents: [.tokens, .fixed(64)])
        let makeT = Contraction(t, x, a, accumulate: false)          // row-local
        let sum = Contraction(dA, t, x, accumulate: true)            // sums over rows
        let useA = Contraction(dx, t, a, accumulate: true)           // row-local, independent of the sum
        let useDA = Contraction(dx, t, dA, accumulate: true)         // row-local, but reads the sum's output
        let program = RowPhases.program([makeT, sum, useA, useDA])
        XCTAssertEqual(program.rowLocalStages, 2)
        XCTAssertEqual(Array(program.stages.prefix(2).joined()), [makeT, useA])
        XCTAssertEqual(Array(program.stages.dropFirst(2).joined()), [sum, useDA])
    }
}
