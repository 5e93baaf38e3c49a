/// LoRA-drop's selection rules (Zhou et al., 2024; DESIGN §4), on importances
/// already measured. Ties break towards the lower index, so results are
/// deterministic.
public enum LoRADrop {
    /// Layer level: the indices of the layers kept — the most important first,
    /// until their cumulative share of the total reaches `threshold`; the layer
    /// that crosses it is kept. Returned ascending. With no importance at all
    /// (every g = 0) every layer is kept: there is nothing to rank by.
    public static func keptLayers(importance: [Double], threshold: Double) -> [Int] {
        precondition(threshold > 0 && threshold <= 1)
        let total = importance.reduce(0, +)
        guard total > 0 else { return Array(importance.indices) }
        let order = descending(importance)
        var kept: [Int] = [], cumulative = 0.0
        for index in order {
            kept.append(index)
            cumulative += importance[index]
            if cumulative >= threshold * total { break }
        }
        return kept.sorted()
    }

    /// Rank level, one pair (`--scope pair`): components in descending share
    /// until they reach `threshold` of the pair's total, at least one. The lost
    /// share is then at most 1 − threshold. Returned in descending share. With
    /// no energy at all every component is kept, as for layers.
    public static func keptComponents(shares: [Double], threshold: Double) -> [Int] {
        precondition(threshold > 0 && threshold <= 1)
        let total = shares.reduce(0, +)
        guard total > 0 else { return Array(shares.indices) }
        var kept: [Int] = [], cumulative = 0.0
        for k in descending(shares) {
            if !kept.isEmpty && cumulative >= threshold * total { break }
            kept.append(k)
            cumulative += shares[k]
        }
        return kept
    }

    /// Rank level, one group (`--scope global`): all components of all pairs
    /// ranked together until `threshold` of the group's total; a pair may keep
    /// none. Returns the kept components of each pair, in descending share
    /// (everything when the group has no energy at all).
    public static func keptComponents(sharesByPair: [[Double]], threshold: Double) -> [[Int]] {
        precondition(threshold > 0 && threshold <= 1)
        let flat = sharesByPair.enumerated().flatMap { p, shares in shares.enumerated().map { (p, $0, $1) } }
        let total = flat.reduce(0) { $0 + $1.2 }
        guard total > 0 else { return sharesByPair.map { Array($0.indices) } }
        let order = flat.indices.sorted { flat[$0].2 != flat[$1].2 ? flat[$0].2 > flat[$1].2 : $0 < $1 }
        var kept = [[Int]](repeating: [], count: sharesByPair.count), cumulative = 0.0
        for index in order {
            if cumulative >= threshold * total { break }
            let (p, k, share) = flat[index]
            kept[p].append(k)
            cumulative += share
        }
        return kept
    }

    /// Indices by descending value, ties by ascending index.
    static func descending(_ values: [Double]) -> [Int] {
        values.indices.sorted { values[$0] != values[$1] ? values[$0] > values[$1] : $0 < $1 }
    }
}
