import AdaptRuntime
import AdaptTestSupport
import XCTest
@testable import AdaptcCore

/// The plan IR's steps beyond multiply-add (`PlanStep`): each kernel against a
/// float64 naive loop over its definition, each VJP rule (`StepVJP`) against
/// central differences of `L = Σ g⊙y`, the verifier's rules, the printer's
/// line, and the emitter's call against the interpreter's arguments.
final class PlanStepTests: XCTestCase {
    /// One zeroed buffer per storage (slot 0), run through `StepRunner`.
    private final class Buffers {
        var data: [Storage: UnsafeMutableBufferPointer<Float>] = [:]
        init(_ sizes: [Storage: Int]) {
            for (s, count) in sizes { data[s] = .allocate(capacity: count); data[s]!.initialize(repeating: 0) }
        }
        deinit { data.values.forEach { $0.deallocate() } }
        subscript(_ s: Storage) -> UnsafeMutableBufferPointer<Float> { data[s]! }
        func run(_ steps: [PlanStep]) throws {
            try StepRunner.run(steps, tokens: 0) { s, _ in self.data[s]!.baseAddress! }
        }
    }

    // x[r: 3, c: 4] column-major (strides 1, 3) in the parameters; u, w [r] after it.
    private let x = TensorView("x", in: .parameters, modes: ["r", "c"], extents: [.fixed(3), .fixed(4)], strides: [.fixed(1), .fixed(3)])
    private let u = TensorView("u", in: .parameters, offset: .fixed(12), modes: ["r"], extents: [.fixed(3)])
    private let w = TensorView("w", in: .parameters, offset: .fixed(15), modes: ["r"], extents: [.fixed(3)])
    private let y = TensorView("y", in: .output, modes: ["r", "c"], extents: [.fixed(3), .fixed(4)])
    private let norm = TensorView("ν", in: .output, modes: ["r"], extents: [.fixed(3)])

    private func buffers(seed: UInt64) -> Buffers {
        let b = Buffers([.parameters: 18, .gradients: 18, .output: 12, .outputGradient: 12, .workspace: 64])
        var random = TestRandom(seed: seed)
        // In [0.5, 1.5): reciprocal and rsqrt are smooth there.
        for i in 0..<18 { b[.parameters][i] = 1 + random.uniform(0.5) }
        for i in 0..<12 { b[.output][i] = random.uniform(0.5) }
        return b
    }

    private func x(_ b: Buffers, _ r: Int, _ c: Int) -> Double { Double(b[.parameters][r + 3 * c]) }

    func testMapMatchesFloat64Reference() throws {
        for (op, f) in [(MapOp.scale(-1.5), { -1.5 * $0 }), (.square, { $0 * $0 }), (.reciprocal, { 1 / $0 }),
                        (.rsqrt, { 1 / $0.squareRoot() })] as [(MapOp, (Double) -> Double)] {
            for accumulate in [false, true] {
                let b = buffers(seed: 1)
                let before = Array(b[.output])
                try b.run([.map(MapStep(y, op, x, accumulate: accumulate))])
                for r in 0..<3 {
                    for c in 0..<4 {
                        let expected = f(x(b, r, c)) + (accumulate ? Double(before[4 * r + c]) : 0)
                        XCTAssertEqual(Double(b[.output][4 * r + c]), expected, accuracy: 1e-6 * max(1, abs(expected)), "\(op) \(r), \(c)")
                    }
                }
            }
        }
    }

    func testRowNormMatchesFloat64Reference() throws {
        let b = buffers(seed: 2)
        try b.run([.rowNorm(RowNormStep(norm, x))])
        for r in 0..<3 {
            let expected = (0..<4).map { x(b, r, $0) * x(b, r, $0) }.reduce(0, +).squareRoot()
            XCTAssertEqual(Double(b[.output][r]), expected, accuracy: 1e-6 * expected)
        }
    }

    func testRowScaleMatchesFloat64Reference() throws {
        for (scale, divisor) in [(u, w), (u, nil), (nil, w), (nil, nil)] as [(TensorView?, TensorView?)] {
            let b = buffers(seed: 3)
            let before = Array(b[.output])
            try b.run([.rowScale(RowScaleStep(y, x, scale: scale, divisor: divisor, alpha: 0.75, accumulate: true))])
            for r in 0..<3 {
                let f = (scale == nil ? 1 : Double(b[.parameters][12 + r])) / (divisor == nil ? 1 : Double(b[.parameters][15 + r]))
                for c in 0..<4 {
                    let expected = Double(before[4 * r + c]) + 0.75 * x(b, r, c) * f
                    XCTAssertEqual(Double(b[.output][4 * r + c]), expected, accuracy: 1e-6 * max(1, abs(expected)))
                }
            }
        }
    }

    /// DoRA's forward rescale, now the row rescale kernel, gives the bits of the
    /// loop it replaced (`y[row·out + o] *= m[o] / norms[o]`), at 1 and 2 threads.
    func testDoRARescaleIsTheOldLoopBitForBit() {
        var random = TestRandom(seed: 4)
        let (n, out) = (37, 21)
        let y0 = random.floats(n * out), m = random.floats(out, bound: 0.5).map { $0 + 0.6 }, norms = random.floats(out, bound: 0.5).map { $0 + 0.8 }
        var expected = y0
        for row in 0..<n { for o in 0..<out { expected[row * out + o] *= m[o] / norms[o] } }
        for threads in [1, 2] {
            var y = y0
            DoRAPair.rescale(&y, rows: n, magnitude: m, norms: norms, out: out, threads: threads)
            XCTAssertEqual(y.map(\.bitPattern), expected.map(\.bitPattern), "threads \(threads)")
        }
    }

    // MARK: - VJP rules against central differences

    private func gradientView(_ v: TensorView) -> TensorView? {
        var g = v
        switch v.storage {
        case .parameters: g.storage = .gradients
        case .output: g.storage = .outputGradient
        default: return nil
        }
        g.name = "d" + v.name
        return g
    }

    /// ∂L/∂parameters by `StepVJP` and by central differences, L = Σ g⊙output (g fixed).
    private func checkVJP(_ step: PlanStep, file: StaticString = #filePath, line: UInt = #line) throws {
        let b = buffers(seed: 5)
        let out = step.output
        let count = out.extents.reduce(1) { $0 * $1.constant }
        var random = TestRandom(seed: 6)
        let g = random.floats(count, bound: 0.5)
        for i in 0..<count { b[.outputGradient][i] = g[i] }
        func loss() throws -> Double {
            try b.run([step])
            return (0..<count).reduce(0) { $0 + Double(g[$1]) * Double(b[.output][$1]) }
        }
        _ = try loss()   // forward: the VJP may read the output
        var next = 0
        let steps = StepVJP.backward(of: step, gradient: gradientView) { name, modes, extents in
            let view = TensorView(name, in: .workspace, offset: .fixed(next), modes: modes, extents: extents)
            next += extents.reduce(1) { $0 * $1.constant }
            return view
        }
        XCTAssertFalse(steps.isEmpty, file: file, line: line)
        try b.run(steps)
        let h: Float = 1e-2
        for i in 0..<18 {
            let saved = b[.parameters][i]
            b[.parameters][i] = saved + h
            let plus = try loss()
            b[.parameters][i] = saved - h
            let minus = try loss()
            b[.parameters][i] = saved
            let numeric = (plus - minus) / (2 * Double(h))
            XCTAssertEqual(Double(b[.gradients][i]), numeric, accuracy: 2e-3 * max(1, abs(numeric)),
                           "\(step.layoutDescription): parameter \(i)", file: file, line: line)
        }
    }

    func testMapVJPs() throws {
        for op in [MapOp.scale(-1.5), .square, .reciprocal, .rsqrt] {
            try checkVJP(.map(MapStep(y, op, x)))
        }
    }

    func testRowNormVJP() throws {
        try checkVJP(.rowNorm(RowNormStep(norm, x)))
    }

    func testRowScaleVJPs() throws {
        for (scale, divisor) in [(u, w), (u, nil), (nil, w)] as [(TensorView?, TensorView?)] {
            try checkVJP(.rowScale(RowScaleStep(y, x, scale: scale, divisor: divisor, alpha: 0.75)))
        }
    }

    // MARK: - Verifier, printer, emitter

    func testVerifierRejectsBadSteps() {
        let bound: (TensorView) -> Extent? = { $0.storage == .parameters ? .fixed(18) : .fixed(12) }
        XCTAssertEqual(PlanVerifier.verify(.rowScale(RowScaleStep(y, x, scale: u, divisor: w)), "ok", bound: bound), [])
        let wrongModes = MapStep(norm, .square, x)
        XCTAssertTrue(PlanVerifier.verify(.map(wrongModes), "c", bound: bound).contains { $0.contains("same one or two modes") })
        var past = u
        past.offset = .fixed(16)
        XCTAssertTrue(PlanVerifier.verify(.rowNorm(RowNormStep(norm, x)), "c", bound: { _ in .fixed(11) })
            .contains { $0.contains("exceeds its buffer") })
        XCTAssertTrue(PlanVerifier.verify(.rowScale(RowScaleStep(y, x, scale: past, divisor: nil)), "c", bound: bound)
            .contains { $0.contains("exceeds its buffer") })
        let columnVector = TensorView("v", in: .parameters, modes: ["c"], extents: [.fixed(4)])
        XCTAssertTrue(PlanVerifier.verify(.rowScale(RowScaleStep(y, x, scale: u, divisor: columnVector)), "c", bound: bound)
            .contains { $0.contains("needs the one mode r") })
        // An in-place rescale is allowed; writing over a vector it reads is not.
        XCTAssertEqual(PlanVerifier.verify(.rowScale(RowScaleStep(y, y, scale: u, divisor: nil)), "c", bound: bound)
            .filter { $0.contains("aliases") }, [])
        let overU = TensorView("o", in: .parameters, offset: .fixed(12), modes: ["r"], extents: [.fixed(3)])
        XCTAssertTrue(PlanVerifier.verify(.rowScale(RowScaleStep(overU, w, scale: u, divisor: nil)), "c", bound: bound)
            .contains { $0.contains("aliases u") })
    }

    func testPrinterLines() {
        XCTAssertEqual(PlanStep.rowNorm(RowNormStep(norm, x)).layoutDescription,
                       "ν[r:3/1]@output+0 = ‖x[r:3/1, c:4/3]@parameters+0‖_c")
        XCTAssertEqual(PlanStep.map(MapStep(y, .rsqrt, x, accumulate: true)).layoutDescription,
                       "y[r:3/4, c:4/1]@output+0 += rsqrt(x[r:3/1, c:4/3]@parameters+0)")
        XCTAssertEqual(PlanStep.rowScale(RowScaleStep(y, x, scale: u, divisor: w, alpha: 2)).layoutDescription,
                       "y[r:3/4, c:4/1]@output+0 = 2.0·x[r:3/1, c:4/3]@parameters+0 ⊙_r (u[r:3/1]@parameters+12 / w[r:3/1]@parameters+15)")
    }

    /// The emitted call passes what `StepRunner` passes: same kernel, same
    /// sizes and strides, so generated code and interpreter give the same bits.
    func testEmitterWritesTheInterpretersCall() {
        let tokens = TensorView("y", in: .output, modes: ["n", "o"], extents: [.tokens, .fixed(5)])
        let m = TensorView("m", in: .parameters, modes: ["o"], extents: [.fixed(5)])
        let step = RowScaleStep(tokens, tokens, scale: m, divisor: nil)
        XCTAssertEqual(KernelEmitter.vectorStatements(.rowScale(step), rows: "rows", threads: "threads", pointer: { $0.name }),
                       ["Kernels.rowScale(rows: 5, columns: rows, alpha: 1.0, a: y, aRow: 1, aColumn: 5, scale: m, scaleStride: 1, "
                        + "divisor: nil, divisorStride: 0, out: y, outRow: 1, outColumn: 5, accumulate: false, threads: threads)"])
        XCTAssertEqual(KernelEmitter.vectorStatements(.rowNorm(RowNormStep(norm, x)), rows: "n", threads: "t", pointer: { $0.name }),
                       ["Kernels.rowNorm(rows: 3, columns: 4, x: x, xRow: 1, xColumn: 3, y: ν, yRow: 1)"])
        XCTAssertEqual(KernelEmitter.vectorStatements(.map(MapStep(y, .scale(0.5), x)), rows: "n", threads: "t", pointer: { $0.name }),
                       ["Kernels.map(.scale(0.5), rows: 3, columns: 4, x: x, xRow: 1, xColumn: 3, y: y, yRow: 4, yColumn: 1, accumulate: false)"])
    }
}
