/// The buffers a plan step reads and writes. Parameters and gradients are the
/// adapter's two contiguous buffers; prepared state (and its gradients) holds
/// what `prepare` computes and must survive until the next `prepare`; the
/// workspace is grow-only scratch for one call; the rest are the caller's arrays.
public enum Storage: String, Hashable, Sendable, CaseIterable, Codable {
    case parameters, gradients
    /// Results of `prepare`, sized by the plan (`Plan.preparedCount`), and the
    /// gradients backward accumulates into them for `finishBackward`.
    case prepared, preparedGradients
    case workspace
    /// Token rows `x` `[n, in]` and the adapter's output `y` `[n, out]`.
    case input, output
    /// `dy` `[n, out]` (given) and `dx` `[n, in]` (accumulated) in backward.
    case outputGradient, inputGradient
    /// The materialised `ΔW` `[out, in]`.
    case delta

    /// Buffers the adapter owns, as opposed to the caller's arrays of one call.
    public var isOwned: Bool { [.parameters, .gradients, .prepared, .preparedGradients].contains(self) }
}

/// A strided N-mode tensor inside one buffer, with the names its modes carry
/// in the contraction network, e.g. `x[n, i.0, i.1]`. Mode order is the order
/// of `strides` as written, not necessarily storage order: a slice of a larger
/// tensor (one layer of a stacked core) is a view with an offset and the
/// parent's strides. Extents and strides may grow with the token count n.
public struct TensorView: Hashable, Sendable, CustomStringConvertible, Codable {
    /// What the tensor is in the maths, for printing: `x`, `A[3.query]`, `core.2`.
    public var name: String
    public var storage: Storage
    /// Which of several caller buffers of this storage (the module's position
    /// in a fused layer forward); 0 otherwise.
    public var slot: Int
    public var offset: Extent
    public var modes: [String]
    public var extents: [Extent]
    public var strides: [Extent]

    public init(_ name: String, in storage: Storage, slot: Int = 0, offset: Extent = .fixed(0),
                modes: [String], extents: [Extent], strides: [Extent]? = nil) {
        precondition(modes.count == extents.count, "a view needs one extent per mode")
        self.name = name
        self.storage = storage
        self.slot = slot
        self.offset = offset
        self.modes = modes
        self.extents = extents
        self.strides = strides ?? TensorView.rowMajorStrides(extents)
    }

    /// A row-major matrix: modes `(row, column)`, an optional row stride for a
    /// column slice of a wider matrix.
    public init(_ name: String, in storage: Storage, slot: Int = 0, offset: Extent = .fixed(0),
                indices: (String, String), shape: (Extent, Extent), rowStride: Extent? = nil) {
        self.init(name, in: storage, slot: slot, offset: offset, modes: [indices.0, indices.1],
                  extents: [shape.0, shape.1], strides: [rowStride ?? shape.1, .fixed(1)])
    }

    /// Strides of a dense row-major layout (last mode fastest).
    public static func rowMajorStrides(_ extents: [Extent]) -> [Extent] {
        var strides = [Extent](repeating: .fixed(1), count: extents.count)
        var step = Extent.fixed(1)
        for k in extents.indices.reversed() {
            strides[k] = step
            step = step * extents[k]
        }
        return strides
    }

    public func extent(of mode: String) -> Extent? { modes.firstIndex(of: mode).map { extents[$0] } }
    public func stride(of mode: String) -> Extent? { modes.firstIndex(of: mode).map { strides[$0] } }

    /// Number of elements (the product of the extents).
    public var count: Extent { extents.reduce(Extent.fixed(1)) { $0 * $1 } }

    /// One past the last element the view touches (offset + Σ (extent − 1)·stride + 1).
    public var end: Extent {
        var end = offset + .fixed(1)
        for (e, s) in zip(extents, strides) { end = end + (e + Extent(-1)) * s }
        return end
    }

    /// The view with `mode` fixed at `index`: the mode disappears, the offset moves.
    public func fixing(_ mode: String, at index: Int) -> TensorView {
        guard let k = modes.firstIndex(of: mode) else { return self }
        var view = self
        view.offset = offset + strides[k] * index
        view.modes.remove(at: k)
        view.extents.remove(at: k)
        view.strides.remove(at: k)
        return view
    }

    /// The modes, by their older name (matrices: row and column index).
    public var indices: [String] { modes }

    /// Conservative: same buffer (and slot) and intersecting spans [offset, end)
    /// for some token count — except two matrices with the same row stride
    /// and unit column stride (column blocks of one wider matrix, e.g. each
    /// module's slice of a stacked z), which overlap only when both their
    /// rows and their columns do.
    public func mayOverlap(_ other: TensorView) -> Bool {
        guard storage == other.storage, slot == other.slot else { return false }
        for n in [1, 2, 64, 4096] {
            let (a0, a1) = (offset.value(tokens: n), end.value(tokens: n))
            let (b0, b1) = (other.offset.value(tokens: n), other.end.value(tokens: n))
            guard a0 < b1 && b0 < a1 else { continue }
            if let disjoint = disjointColumnBlocks(other, tokens: n), disjoint { continue }
            // Views with no size that grows with n: disjoint for one n, disjoint for all.
            if disjointAlongOneMode(other) { return false }
            return true
        }
        return false
    }

    /// Two pieces of one tensor cut along one mode (a sum over rows split in
    /// pieces of its output, `RowPhases.pieces`): same modes and fixed strides,
    /// extents that differ at most in that mode, offsets a whole number of its
    /// strides apart with the index ranges along it disjoint, in a layout where
    /// no two indices share an address.
    private func disjointAlongOneMode(_ other: TensorView) -> Bool {
        guard modes == other.modes, strides == other.strides, strides.allSatisfy({ $0.isFixed && $0.constant > 0 }),
              extents.allSatisfy(\.isFixed), other.extents.allSatisfy(\.isFixed), offset.isFixed, other.offset.isFixed
        else { return false }
        let cut = modes.indices.filter { extents[$0] != other.extents[$0] }
        guard cut.count <= 1 else { return false }
        let difference = other.offset.constant - offset.constant
        for k in cut.isEmpty ? Array(modes.indices) : cut {
            let s = strides[k].constant
            guard difference % s == 0 else { continue }
            let shift = difference / s
            let (mine, theirs) = (extents[k].constant, other.extents[k].constant)
            guard shift >= mine || -shift >= theirs else { continue }
            // Injective with the cut mode spanning both pieces: each stride passes everything inside it.
            var spans = extents.map(\.constant)
            spans[k] = Swift.max(mine, shift + theirs) - Swift.min(0, shift)
            let order = modes.indices.sorted { strides[$0].constant < strides[$1].constant }
            var reach = 0
            var injective = true
            for i in order {
                if spans[i] > 1 && strides[i].constant <= reach { injective = false }
                reach += (spans[i] - 1) * strides[i].constant
            }
            if injective { return true }
        }
        return false
    }

    private func disjointColumnBlocks(_ other: TensorView, tokens n: Int) -> Bool? {
        guard modes.count == 2, other.modes.count == 2 else { return nil }
        let s = strides.map { $0.value(tokens: n) }, t = other.strides.map { $0.value(tokens: n) }
        guard s == t, s[1] == 1, s[0] > 0 else { return nil }
        let stride = s[0]
        let (o1, o2) = (offset.value(tokens: n), other.offset.value(tokens: n))
        let (c1, c2) = (o1 % stride, o2 % stride), (r1, r2) = (o1 / stride, o2 / stride)
        let (w1, w2) = (extents[1].value(tokens: n), other.extents[1].value(tokens: n))
        let (h1, h2) = (extents[0].value(tokens: n), other.extents[0].value(tokens: n))
        guard c1 + w1 <= stride, c2 + w2 <= stride else { return nil }
        let columns = c1 < c2 + w2 && c2 < c1 + w1, rows = r1 < r2 + h2 && r2 < r1 + h1
        return !(columns && rows)
    }

    public var description: String { "\(name)[\(modes.joined(separator: ", "))]" }
}

/// Matrices are two-mode tensor views; the name stays for the LoRA planner and tests.
public typealias MatrixView = TensorView
