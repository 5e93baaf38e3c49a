/// The buffers a plan step reads and writes. Parameters and gradients are the
/// adapter's two contiguous buffers; the workspace is grow-only scratch sized by
/// the plan; the rest are the caller's arrays for one call.
public enum Storage: String, Hashable, Sendable, CaseIterable, Codable {
    case parameters, gradients, workspace
    /// Token rows `x` `[n, in]` and the adapter's output `y` `[n, out]`.
    case input, output
    /// `dy` `[n, out]` (given) and `dx` `[n, in]` (accumulated) in backward.
    case outputGradient, inputGradient
    /// The materialised `ΔW` `[out, in]`.
    case delta
}

/// A row-major matrix inside one buffer, with the names of its two indices
/// (row, column) as they appear in the contraction network, e.g. `x[n, i]`.
public struct MatrixView: Hashable, Sendable, CustomStringConvertible, Codable {
    /// What the tensor is in the maths, for printing: `x`, `A[3.query]`, `z`.
    public var name: String
    public var storage: Storage
    public var offset: Extent
    public var rowIndex: String
    public var columnIndex: String
    public var rows: Extent
    public var columns: Extent
    /// Distance between consecutive rows; larger than `columns` for a column slice.
    public var rowStride: Extent
    /// Which of several caller buffers of this storage (the module's position in a
    /// fused layer forward); 0 otherwise.
    public var slot: Int

    public init(_ name: String, in storage: Storage, slot: Int = 0, offset: Extent = .fixed(0),
                indices: (String, String), shape: (Extent, Extent), rowStride: Extent? = nil) {
        self.name = name
        self.storage = storage
        self.slot = slot
        self.offset = offset
        self.rowIndex = indices.0
        self.columnIndex = indices.1
        self.rows = shape.0
        self.columns = shape.1
        self.rowStride = rowStride ?? shape.1
    }

    public var indices: [String] { [rowIndex, columnIndex] }

    public func extent(of index: String) -> Extent? {
        index == rowIndex ? rows : index == columnIndex ? columns : nil
    }

    /// One past the last element the view touches.
    public var end: Extent { offset + rowStride * (rows + Extent(-1)) + columns }

    public var description: String { "\(name)[\(rowIndex), \(columnIndex)]" }
}
