/// Index sources (issue 23): where the index that picks the slice of an owned
/// tensor comes from when a program runs. The planners fix every index at plan
/// time — one program per (layer, module) pair, one step per member of a
/// stage — and most of those programs differ only in where their owned tensors
/// sit: pair (l, m) of a stacked core reads `core + l·stride_l + m·stride_m`.
/// Such programs are one program whose owned offsets are affine in a few
/// run-time indices: a dispatch argument (the layer and the module a call
/// names), or the position of a step among the members of a stage. The emitter
/// then writes one call per program shape with the offset computed in the entry
/// point, instead of one literal case per pair.
///
/// The indices are plain integers here; which source each one is (the
/// call's `layer` and `module.rawValue`, or a stage member's `i / R` and
/// `i % R`) is the emitter's to say when it writes the offset out.

/// `base + Σ_k strides[k]·index_k`: an owned tensor's offset as a function of
/// the indices of a family's sources, exact in integers.
public struct AffineOffset: Hashable, Sendable, Codable {
    public var base: Int
    public var strides: [Int]

    public init(base: Int, strides: [Int]) {
        self.base = base
        self.strides = strides
    }

    public func value(at indices: [Int]) -> Int {
        zip(strides, indices).reduce(base) { $0 + $1.0 * $1.1 }
    }
}

/// Members that run the same program shape, each owned offset affine in the
/// members' indices: `offsets[s].value(at: indices[member]) ==` the member's
/// own offset in slot `s`, for every member (`AffineFamilies` checks it).
public struct AffineFamily: Hashable, Sendable {
    /// Positions of the members in the list the family was cut from, ascending.
    public var members: [Int]
    public var offsets: [AffineOffset]
}

public enum AffineFamilies {
    /// Cuts `count` members into families, in order: a member joins the first
    /// family of its `key` whose offsets stay affine with it added, or starts
    /// a new one. `indices(i)`: member i's index per source; `offsets(i)`: its
    /// owned offsets, one per slot (same slot count for one key).
    public static func partition<Key: Hashable>(count: Int, key: (Int) -> Key, indices: (Int) -> [Int],
                                                offsets: (Int) -> [Int]) -> [AffineFamily] {
        var families: [(key: Key, family: AffineFamily)] = []
        let allIndices = (0..<count).map(indices), allOffsets = (0..<count).map(offsets)
        for i in 0..<count {
            let k = key(i)
            var placed = false
            for f in families.indices where families[f].key == k {
                let family = families[f].family
                if family.offsets.indices.allSatisfy({ family.offsets[$0].value(at: allIndices[i]) == allOffsets[i][$0] }) {
                    families[f].family.members.append(i)
                    placed = true
                } else if let refit = fit(indices: (family.members + [i]).map { allIndices[$0] },
                                          offsets: (family.members + [i]).map { allOffsets[$0] }) {
                    families[f].family = AffineFamily(members: family.members + [i], offsets: refit)
                    placed = true
                }
                if placed { break }
            }
            if !placed {
                let sources = allIndices[i].count
                let own = allOffsets[i].map { AffineOffset(base: $0, strides: [Int](repeating: 0, count: sources)) }
                families.append((k, AffineFamily(members: [i], offsets: own)))
            }
        }
        return families.map(\.family)
    }

    /// The exact integer affine functions through every member's offsets, or
    /// nil. A stride is read off two members that differ in that index alone
    /// (0 where no two do), then every member is checked against the result.
    public static func fit(indices: [[Int]], offsets: [[Int]]) -> [AffineOffset]? {
        guard let first = indices.first else { return nil }
        let sources = first.count, slots = offsets[0].count
        var strides = [[Int]](repeating: [Int](repeating: 0, count: sources), count: slots)
        for k in 0..<sources {
            // Two members whose indices differ in source k only: the first member of each
            // class of equal other indices, and the first later one of that class with another k.
            var firstOfClass: [[Int]: Int] = [:]
            var pair: (Int, Int)?
            for (m, index) in indices.enumerated() {
                var others = index
                others[k] = 0
                if let a = firstOfClass[others] {
                    if indices[a][k] != index[k] { pair = (a, m); break }
                } else {
                    firstOfClass[others] = m
                }
            }
            guard let (a, b) = pair else { continue }
            let step = indices[b][k] - indices[a][k]
            for s in 0..<slots {
                let difference = offsets[b][s] - offsets[a][s]
                guard difference % step == 0 else { return nil }
                strides[s][k] = difference / step
            }
        }
        var result: [AffineOffset] = []
        for s in 0..<slots {
            let base = offsets[0][s] - zip(strides[s], first).reduce(0) { $0 + $1.0 * $1.1 }
            let offset = AffineOffset(base: base, strides: strides[s])
            for (m, index) in indices.enumerated() where offset.value(at: index) != offsets[m][s] { return nil }
            result.append(offset)
        }
        return result
    }

    /// The families of a stage's members (`key`, `offsets` per member) with
    /// indices (block, lane) = (i / R, i % R) for the block size R that gives
    /// the fewest families: the whole stage (plain `i`), then each R from 2 up
    /// (members laid out layer by layer, module by module within a layer, or a
    /// run of pairs — a tensor's two halves — inside a longer stage: R need not
    /// divide the member count). Returns R and the families.
    public static func stage<Key: Hashable>(count: Int, key: (Int) -> Key, offsets: (Int) -> [Int]) -> (blockSize: Int, families: [AffineFamily]) {
        var best: (blockSize: Int, families: [AffineFamily])?
        let keys = (0..<count).map(key), owned = (0..<count).map(offsets)
        for r in [count] + Array(2..<max(count, 2)) {
            let families = partition(count: count, key: { keys[$0] }, indices: { [$0 / r, $0 % r] }, offsets: { owned[$0] })
            if best == nil || families.count < best!.families.count { best = (r, families) }
            if families.count == Set(keys).count { break }  // one family per shape: nothing fewer
        }
        return best!
    }
}
