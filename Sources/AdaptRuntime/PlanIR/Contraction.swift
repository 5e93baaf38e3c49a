/// One pairwise contraction of the network: `output (=|+=) alpha · Σ_k a·b`,
/// summing over the index `a` and `b` share and `output` lacks — an einsum of
/// two matrices, which always lowers to one GEMM (or a GEMV when one side is a
/// single row).
public struct Contraction: Hashable, Sendable, CustomStringConvertible, Codable {
    public var output: MatrixView
    public var a: MatrixView
    public var b: MatrixView
    public var alpha: Float
    /// `+=` when true; otherwise the output is overwritten.
    public var accumulate: Bool

    public init(_ output: MatrixView, _ a: MatrixView, _ b: MatrixView, alpha: Float = 1, accumulate: Bool) {
        self.output = output
        self.a = a
        self.b = b
        self.alpha = alpha
        self.accumulate = accumulate
    }

    /// The summed index, if the contraction is well formed.
    public var contractedIndex: String? {
        let shared = Set(a.indices).intersection(b.indices).subtracting(output.indices)
        return shared.count == 1 ? shared.first : nil
    }

    public var description: String {
        let scale = alpha == 1 ? "" : "\(alpha)·"
        let k = contractedIndex ?? "?"
        return "\(output) \(accumulate ? "+=" : "=") \(scale)Σ_\(k) \(a)·\(b)"
    }

    /// The BLAS call this contraction lowers to, with `output` as C.
    public var lowered: Lowered? {
        guard let k = contractedIndex else { return nil }
        let p = output.rowIndex, q = output.columnIndex
        // op(A) must be [p, k] and op(B) [k, q]: pick which operand plays A.
        let (left, right): (MatrixView, MatrixView)
        if a.indices.contains(p) && b.indices.contains(q) {
            (left, right) = (a, b)
        } else if b.indices.contains(p) && a.indices.contains(q) {
            (left, right) = (b, a)
        } else {
            return nil
        }
        guard Set(left.indices) == [p, k], Set(right.indices) == [k, q] else { return nil }
        return Lowered(left: left, transLeft: left.rowIndex != p, right: right, transRight: right.rowIndex != k,
                       m: output.rows, n: output.columns, k: left.extent(of: k)!)
    }

    /// `C[m, n] = alpha·op(left)·op(right) + beta·C` with C = output.
    public struct Lowered: Hashable, Sendable {
        public var left: MatrixView
        public var transLeft: Bool
        public var right: MatrixView
        public var transRight: Bool
        public var m: Extent
        public var n: Extent
        public var k: Extent
    }
}
