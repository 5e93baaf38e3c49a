import AdaptRuntime

/// The stored tensors of a tensor-train, CP or Tucker group and the modes
/// they carry in its contraction network (DESIGN §2). Mode names are the
/// delta tensor's (`layer`, `module`, `out.0`, `in`, …) plus the internal
/// ones: bonds `r1 …` (tensor-train), `c` (CP), `t.MODE` (Tucker ranks).
/// Modes of extent 1 are left out: they address nothing.
struct StructureNetwork {
    struct Factor {
        var name: TensorKey
        var key: String { name.description }
        /// Stored shape, as in the adapter file.
        var shape: [Int]
        /// Network modes of the stored axes (nil where the axis has extent 1).
        var axes: [String?]
        /// The delta tensor's modes the tensor carries, for `train:` (DESIGN §3):
        /// a core or factor its own mode; a Tucker core every mode (it has an index for each).
        var carries: [ModeName] = []
        var modes: [String] { axes.compactMap { $0 } }
    }

    var factors: [Factor] = []
    var extents: [String: Int] = [:]
    /// `layer` and `module` when the group has more than one of each.
    var layerMode: String?
    var moduleMode: String?
    /// Out and in modes in row-major (factor) order: ΔW's rows and columns.
    var outModes: [String] = []
    var inModes: [String] = []

    init(_ group: ResolvedGroup) {
        let modes = group.modes
        func name(_ m: ResolvedMode) -> String { m.name.description }
        for m in modes { extents[name(m)] = m.size }
        layerMode = modes.first { $0.name.kind == .layer }.map(name)
        moduleMode = modes.first { $0.name.kind == .module }.map(name)
        outModes = modes.filter { $0.name.kind == .out }.sorted { $0.name < $1.name }.map(name)
        inModes = modes.filter { $0.name.kind == .in }.sorted { $0.name < $1.name }.map(name)
        func axis(_ mode: String, _ size: Int) -> String? {
            extents[mode] = size
            return size > 1 ? mode : nil
        }
        switch group.ranks {
        case .tensorTrain(let bonds):
            // Core k: [r_{k-1}, n_k, r_k], r_0 = r_N = 1, key GROUP.core.K.
            for (k, m) in modes.enumerated() {
                let left = k == 0 ? 1 : bonds[k - 1], right = k == modes.count - 1 ? 1 : bonds[k]
                factors.append(Factor(name: TensorKey(group: group.name, role: .core(k)), shape: [left, m.size, right],
                                      axes: [axis("r\(k)", left), axis(name(m), m.size), axis("r\(k + 1)", right)],
                                      carries: [m.name]))
            }
        case .cp(let rank):
            for m in modes {
                factors.append(Factor(name: TensorKey(group: group.name, role: .factor(mode: name(m))), shape: [m.size, rank],
                                      axes: [axis(name(m), m.size), axis("c", rank)], carries: [m.name]))
            }
        case .tucker(let ranks):
            var coreShape: [Int] = [], coreAxes: [String?] = []
            var factorList: [Factor] = []
            for (m, rank) in zip(modes, ranks) {
                if let rank {
                    coreShape.append(rank)
                    coreAxes.append(axis("t.\(name(m))", rank))
                    factorList.append(Factor(name: TensorKey(group: group.name, role: .factor(mode: name(m))), shape: [m.size, rank],
                                             axes: [axis(name(m), m.size), axis("t.\(name(m))", rank)],
                                             carries: [m.name]))
                } else {
                    coreShape.append(m.size)
                    coreAxes.append(axis(name(m), m.size))
                }
            }
            factors = [Factor(name: TensorKey(group: group.name, role: .tuckerCore), shape: coreShape, axes: coreAxes, carries: modes.map(\.name))]
                + factorList
        case .lora:
            preconditionFailure("lora groups are planned per pair")
        }
    }

    func extent(_ mode: String) -> Int { extents[mode] ?? 1 }

    /// A stored tensor as a view (extent-1 axes left out; strides of the stored layout).
    func view(_ factor: Factor, offset: Int, storage: Storage, name: String) -> TensorView {
        let strides = TensorView.rowMajorStrides(factor.shape.map { Extent.fixed($0) })
        var modes: [String] = [], extents: [Extent] = [], kept: [Extent] = []
        for (k, axis) in factor.axes.enumerated() {
            guard let axis else { continue }
            modes.append(axis)
            extents.append(.fixed(factor.shape[k]))
            kept.append(strides[k])
        }
        return TensorView(name, in: storage, offset: .fixed(offset), modes: modes, extents: extents, strides: kept)
    }
}
