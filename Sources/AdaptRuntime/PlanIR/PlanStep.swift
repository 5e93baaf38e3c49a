/// One step of the plan IR beyond multiply-add (issue 23): a contraction, an
/// element-wise map `y = f(x)`, a row norm `y_r = ‖x_r‖₂`, or a row rescale
/// `out_rc = α·a_rc·(u_r / w_r)` — the steps DoRA's `W' = m ⊙ V/‖V‖_row`
/// (DESIGN §5) is made of. Each has a VJP rule (`StepVJP`, AdaptcCore), a
/// verifier rule (`PlanVerifier.verify(_:_:bound:)`), a printer line
/// (`layoutDescription`) and one kernel (`KernelStep(_:)`) both executors run.
/// Views of `map`, `rowNorm` and `rowScale` have one or two modes.
public enum PlanStep: Hashable, Sendable {
    case contract(Contraction)
    case map(MapStep)
    case rowNorm(RowNormStep)
    case rowScale(RowScaleStep)

    /// The view the step writes.
    public var output: TensorView {
        switch self {
        case .contract(let c): return c.output
        case .map(let s): return s.output
        case .rowNorm(let s): return s.output
        case .rowScale(let s): return s.output
        }
    }

    /// The views the step reads (the output too where it accumulates).
    public var operands: [TensorView] {
        switch self {
        case .contract(let c): return [c.a] + (c.b.map { [$0] } ?? [])
        case .map(let s): return [s.input]
        case .rowNorm(let s): return [s.input]
        case .rowScale(let s): return [s.a] + (s.scale.map { [$0] } ?? []) + (s.divisor.map { [$0] } ?? [])
        }
    }

    /// The printer's line: every view with its layout, so two steps never print the same.
    public var layoutDescription: String {
        switch self {
        case .contract(let c): return c.layoutDescription
        case .map(let s):
            return "\(s.output.layoutDescription) \(s.accumulate ? "+=" : "=") \(s.op)(\(s.input.layoutDescription))"
        case .rowNorm(let s):
            let columns = s.input.modes.filter { $0 != s.row }.joined(separator: ",")
            return "\(s.output.layoutDescription) = ‖\(s.input.layoutDescription)‖_\(columns.isEmpty ? "-" : columns)"
        case .rowScale(let s):
            let alpha = s.alpha == 1 ? "" : "\(s.alpha)·"
            let u = s.scale?.layoutDescription ?? "1"
            let w = s.divisor.map { " / " + $0.layoutDescription } ?? ""
            return "\(s.output.layoutDescription) \(s.accumulate ? "+=" : "=") \(alpha)\(s.a.layoutDescription) ⊙_\(s.row) (\(u)\(w))"
        }
    }
}

/// The element-wise unary functions a `map` step applies.
public enum MapOp: Hashable, Sendable, CustomStringConvertible {
    /// `α·x`.
    case scale(Float)
    /// `x²`.
    case square
    /// `1/x`.
    case reciprocal
    /// `1/√x` (as `1 / x.squareRoot()`, two correctly rounded operations).
    case rsqrt

    /// `f(x)` in Float, the one definition both executors run (`Kernels.map`).
    @inline(__always)
    public func apply(_ x: Float) -> Float {
        switch self {
        case .scale(let alpha): return alpha * x
        case .square: return x * x
        case .reciprocal: return 1 / x
        case .rsqrt: return 1 / x.squareRoot()
        }
    }

    public var description: String {
        switch self {
        case .scale(let alpha): return "scale(\(alpha))"
        case .square: return "square"
        case .reciprocal: return "reciprocal"
        case .rsqrt: return "rsqrt"
        }
    }
}

/// `output (=|+=) op(input)` element by element; both views have the same modes
/// (by name, in any order) with the same extents.
public struct MapStep: Hashable, Sendable {
    public var output: TensorView
    public var input: TensorView
    public var op: MapOp
    public var accumulate: Bool

    public init(_ output: TensorView, _ op: MapOp, _ input: TensorView, accumulate: Bool = false) {
        self.output = output
        self.input = input
        self.op = op
        self.accumulate = accumulate
    }
}

/// `output[r] = ‖input[r, ·]‖₂`: the Euclidean norm over the input's other mode
/// (none: `|input[r]|`), summed in float64 in column order, rounded once to Float.
public struct RowNormStep: Hashable, Sendable {
    public var output: TensorView
    public var input: TensorView
    /// The mode the output keeps (the output's one mode).
    public var row: String { output.modes.first ?? "" }

    public init(_ output: TensorView, _ input: TensorView) {
        self.output = output
        self.input = input
    }
}

/// `output[r, c] (=|+=) α·(a[r, c]·f_r)` with `f_r = u_r / w_r` (a missing `u`
/// or `w` is 1; `f` is computed first, in Float): each line of `a` along its
/// other mode scaled by an entry of the vectors `u`, `w` (one mode, `row`).
/// DoRA's forward is `y ← y ⊙_o (m / ‖V‖)` on `y[n, o]`.
public struct RowScaleStep: Hashable, Sendable {
    public var output: TensorView
    public var a: TensorView
    public var scale: TensorView?
    public var divisor: TensorView?
    public var alpha: Float
    public var accumulate: Bool
    /// The mode the vectors index.
    public var row: String { (scale ?? divisor)?.modes.first ?? a.modes.first ?? "" }

    public init(_ output: TensorView, _ a: TensorView, scale: TensorView?, divisor: TensorView?, alpha: Float = 1,
                accumulate: Bool = false) {
        self.output = output
        self.a = a
        self.scale = scale
        self.divisor = divisor
        self.alpha = alpha
        self.accumulate = accumulate
    }
}

/// A one- or two-mode view as the vector kernels take it: along `row` (extent,
/// stride) and along the other mode (extent 1, stride 0 when there is none).
public struct LineGeometry: Hashable, Sendable {
    public var rows: Extent, rowStride: Extent
    public var columns: Extent, columnStride: Extent

    public init(rows: Extent, rowStride: Extent, columns: Extent, columnStride: Extent) {
        self.rows = rows
        self.rowStride = rowStride
        self.columns = columns
        self.columnStride = columnStride
    }

    /// nil when `view` has more than two modes or lacks `row`.
    public init?(_ view: TensorView, row: String) {
        guard view.modes.count <= 2, let r = view.modes.firstIndex(of: row) else { return nil }
        rows = view.extents[r]
        rowStride = view.strides[r]
        if view.modes.count == 2 {
            columns = view.extents[1 - r]
            columnStride = view.strides[1 - r]
        } else {
            columns = .fixed(1)
            columnStride = .fixed(0)
        }
    }
}

// The kernels' arguments (for steps the verifier accepted).
extension MapStep {
    /// Input and output along the input's first mode.
    public var geometry: (input: LineGeometry, output: LineGeometry) {
        let row = input.modes.first ?? ""
        return (LineGeometry(input, row: row)!, LineGeometry(output, row: row)!)
    }
}

extension RowNormStep {
    public var geometry: (input: LineGeometry, output: LineGeometry) {
        (LineGeometry(input, row: row)!, LineGeometry(output, row: row)!)
    }
}

extension RowScaleStep {
    /// `a` and `output` along `row`; the vectors' strides along it.
    public var geometry: (a: LineGeometry, output: LineGeometry, scale: Extent?, divisor: Extent?) {
        (LineGeometry(a, row: row)!, LineGeometry(output, row: row)!, scale?.strides.first, divisor?.strides.first)
    }
}
