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
    /// How far the view moves per task (DESIGN §2 "Tasks"): the stride of a
    /// `task` mode fixed, not at plan time, but by the call — all rows one
    /// task (`task:`), or each run of rows its own (`tasks:`, `TaskRouting`
    /// puts rows of one task together). The view of task t starts at
    /// `offset + t·taskStride`. 0 for a view that no task moves (a token
    /// buffer, the workspace, a tensor the task mode does not reach), which
    /// is every view of a group without tasks.
    public var taskStride: Int = 0

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

    /// Conservative: same buffer (and slot) and intersecting spans [offset, end)
    /// for some token count n ≥ 1 (decided exactly: both ends are linear in
    /// n) — except two matrices with the same row stride and unit column
    /// stride (column blocks of one wider matrix, e.g. each module's slice of
    /// a stacked z), which overlap only when both their rows and their columns
    /// do, and two pieces of one tensor cut along one mode.
    public func mayOverlap(_ other: TensorView) -> Bool {
        guard storage == other.storage, slot == other.slot else { return false }
        let meet = TokenCounts.all.requiring(positive: other.end - offset).requiring(positive: end - other.offset)
        guard !meet.isEmpty else { return false }
        // Views with no size that grows with n: disjoint for one n, disjoint for all.
        if disjointAlongOneMode(other) { return false }
        return columnBlocksMeet(other, for: meet) ?? true
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

    /// For two column blocks of one matrix (same row stride S, unit column
    /// stride, each inside one row of S): whether their rows and columns both
    /// meet for some n in `counts`; nil when they are not such blocks for
    /// every n there, in a form linear in n (offset = row·S + column with
    /// row and column linear, 0 ≤ column and column + width ≤ S).
    private func columnBlocksMeet(_ other: TensorView, for counts: TokenCounts) -> Bool? {
        guard modes.count == 2, other.modes.count == 2, strides == other.strides, strides[1] == .fixed(1),
              counts.allPositive(strides[0]), let mine = block(in: counts), let theirs = other.block(in: counts)
        else { return nil }
        let (h1, h2, w1, w2) = (extents[0], other.extents[0], extents[1], other.extents[1])
        return !counts.requiring(positive: theirs.column + w2 - mine.column).requiring(positive: mine.column + w1 - theirs.column)
            .requiring(positive: theirs.row + h2 - mine.row).requiring(positive: mine.row + h1 - theirs.row).isEmpty
    }

    /// This matrix's first element as (row, column) of its row stride, if that is linear in n over `counts`.
    private func block(in counts: TokenCounts) -> (row: Extent, column: Extent)? {
        let stride = strides[0], n = counts.lower
        // A row that grows with n needs a fixed stride (else the offset would be quadratic in n).
        var row = Extent(0)
        if offset.perToken != 0 && stride.isFixed {
            guard offset.perToken % stride.constant == 0 else { return nil }
            row.perToken = offset.perToken / stride.constant
        }
        let rest = offset - row * stride
        row.constant = TokenCounts.floorDivide(rest.value(tokens: n), stride.value(tokens: n))
        let column = offset - row * stride
        guard counts.allPositive(column + .fixed(1)), counts.allPositive(stride - column - extents[1] + .fixed(1)) else { return nil }
        return (row, column)
    }

    public var description: String { "\(name)[\(modes.joined(separator: ", "))]" }

    /// The view of task `task` (`taskStride` applied): the one a plan of a
    /// group without tasks would have held for it.
    public func forTask(_ task: Int) -> TensorView {
        var view = self
        view.offset = offset + .fixed(task * taskStride)
        view.taskStride = 0
        return view
    }

    private enum CodingKeys: String, CodingKey { case name, storage, slot, offset, modes, extents, strides, taskStride }

    // `taskStride` is written only when not 0, so plans without tasks encode as before.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(try c.decode(String.self, forKey: .name), in: try c.decode(Storage.self, forKey: .storage),
                  slot: try c.decode(Int.self, forKey: .slot), offset: try c.decode(Extent.self, forKey: .offset),
                  modes: try c.decode([String].self, forKey: .modes), extents: try c.decode([Extent].self, forKey: .extents),
                  strides: try c.decode([Extent].self, forKey: .strides))
        taskStride = try c.decodeIfPresent(Int.self, forKey: .taskStride) ?? 0
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(name, forKey: .name)
        try c.encode(storage, forKey: .storage)
        try c.encode(slot, forKey: .slot)
        try c.encode(offset, forKey: .offset)
        try c.encode(modes, forKey: .modes)
        try c.encode(extents, forKey: .extents)
        try c.encode(strides, forKey: .strides)
        if taskStride != 0 { try c.encode(taskStride, forKey: .taskStride) }
    }
}

/// Matrices are two-mode tensor views; the name stays for the LoRA planner and tests.
public typealias MatrixView = TensorView
