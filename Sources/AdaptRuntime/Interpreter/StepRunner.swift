/// The interpreter's half of `PlanStep`: the vector kernels' arguments from
/// the views (`LineGeometry`), exactly as `KernelEmitter` writes them, and a
/// list of steps run in order on buffers the caller gives (steps outside any
/// program, and the tests' reference runs).
public enum StepRunner {
    /// Runs `steps` in order on `n` token rows; `buffer` gives each storage and
    /// slot's first element. A step the verifier would reject throws, naming it.
    public static func run(_ steps: [PlanStep], tokens n: Int, threads: Int = 1,
                           buffer: (Storage, Int) -> UnsafeMutablePointer<Float>) throws {
        for step in steps {
            let problems = PlanVerifier.verify(step, "step", bound: { _ in nil })
            guard problems.isEmpty, let kernel = KernelStep(step) else {
                throw AdapterError("\(step.layoutDescription): " + (problems.first ?? "does not lower"))
            }
            var alpha: Float = 1, accumulate = false
            if case .contract(let c) = step { (alpha, accumulate) = (c.alpha, c.accumulate) }
            PlanInterpreter.execute(kernel, alpha: alpha, accumulate: accumulate, size: { $0.value(tokens: n) },
                                    stride: { $0.value(tokens: n) }, threads: threads) { view in
                buffer(view.storage, view.slot) + view.offset.value(tokens: n)
            }
        }
    }

    /// A `.map`, `.rowNorm` or `.rowScale` kernel (others: nothing).
    static func vector(_ kernel: KernelStep, size: (Extent) -> Int, stride: (Extent) -> Int, threads: Int,
                       at: (TensorView) -> UnsafeMutablePointer<Float>) {
        switch kernel {
        case .map(let s):
            let (x, y) = s.geometry
            Kernels.map(s.op, rows: size(x.rows), columns: size(x.columns), x: at(s.input), xRow: stride(x.rowStride),
                        xColumn: stride(x.columnStride), y: at(s.output), yRow: stride(y.rowStride), yColumn: stride(y.columnStride),
                        accumulate: s.accumulate)
        case .rowNorm(let s):
            let (x, y) = s.geometry
            Kernels.rowNorm(rows: size(x.rows), columns: size(x.columns), x: at(s.input), xRow: stride(x.rowStride),
                            xColumn: stride(x.columnStride), y: at(s.output), yRow: stride(y.rowStride))
        case .rowScale(let s):
            let g = s.geometry
            Kernels.rowScale(rows: size(g.a.rows), columns: size(g.a.columns), alpha: s.alpha, a: at(s.a),
                             aRow: stride(g.a.rowStride), aColumn: stride(g.a.columnStride),
                             scale: s.scale.map { UnsafePointer(at($0)) }, scaleStride: g.scale.map { stride($0) } ?? 0,
                             divisor: s.divisor.map { UnsafePointer(at($0)) }, divisorStride: g.divisor.map { stride($0) } ?? 0,
                             out: at(s.output), outRow: stride(g.output.rowStride), outColumn: stride(g.output.columnStride),
                             accumulate: s.accumulate, threads: threads)
        default:
            preconditionFailure("not a vector kernel: \(kernel)")
        }
    }
}
