import Foundation

/// `report.json` and the table `adaptc prune` prints: parameters before and
/// after, calibration output energy kept per group and in all, what was dropped.
public struct PruneReport {
    public var specPath: String
    public var result: PruneResult
    /// Stored parameters per group name, before and after (new shared groups counted with their source).
    public var parametersBefore: [String: Int]
    public var parametersAfter: [String: Int]

    public var totalBefore: Int { parametersBefore.values.reduce(0, +) }
    public var totalAfter: Int { parametersAfter.values.reduce(0, +) }

    /// Deterministic JSON (sorted keys).
    public func json() throws -> String {
        let groups: [[String: Any]] = result.groups.map { g in
            var object: [String: Any] = [
                "name": g.name, "structure": g.structure.rawValue, "pruned": g.pruned,
                "parameters_before": parametersBefore[g.name] ?? 0, "parameters_after": parametersAfter[g.name] ?? 0,
                "energy_total": g.totalEnergy, "energy_kept": g.energyKept,
                "kept_layers": g.keptLayers, "dropped_layers": g.droppedLayers,
                "layers": g.layerShares.map { ["layer": $0.layer, "share": $0.share, "kept": g.keptLayers.contains($0.layer)] as [String: Any] },
                "pairs": g.pairs.map { p -> [String: Any] in
                    var pair: [String: Any] = [
                        "key": p.pair.key, "layer": p.pair.layer, "module": p.pair.module, "importance": p.importance,
                        "rank_before": p.rankBefore, "singular_values": p.singularValues,
                        "component_energies": p.componentEnergies, "kept_components": p.keptComponents,
                        "lost_energy": p.lostEnergy, "layer_dropped": p.rankAfter == nil, "vanished": p.vanished,
                    ]
                    if let r = p.rankAfter { pair["rank_after"] = r }
                    return pair
                },
            ]
            if !g.bonds.isEmpty {
                object["bonds"] = g.bonds.enumerated().map { k, b -> [String: Any] in
                    ["bond": k + 1, "left": b.left, "right": b.right, "rank_before": b.rankBefore, "rank_after": b.rankAfter,
                     "energies": b.energies, "exact_weighting": b.exactWeighting, "lost_energy": b.lostEnergy]
                }
            }
            if !g.modes.isEmpty {
                // Tucker: one entry per mode (rank null where full); cp: its components.
                object["modes"] = g.modes.map { m -> [String: Any] in
                    ["name": m.name, "rank_before": m.rankBefore.map { $0 as Any } ?? NSNull(),
                     "rank_after": m.rankAfter.map { $0 as Any } ?? NSNull(), "energies": m.energies, "kept_components": m.kept,
                     "exact_weighting": m.exactWeighting, "lost_energy": m.lostEnergy,
                     "energy_kept": g.totalEnergy > 0 ? 1 - m.lostEnergy / g.totalEnergy : 1]
                }
            }
            if let s = g.sharedGroupName { object["shared_group"] = s }
            if let r = g.sharedRank { object["shared_rank_after"] = r }
            return object
        }
        let root: [String: Any] = [
            "spec": specPath, "threshold": result.settings.threshold,
            "levels": result.settings.levels.map(\.rawValue), "scope": result.settings.scope.rawValue,
            "parameters_before": totalBefore, "parameters_after": totalAfter,
            "energy_total": result.totalEnergy, "energy_kept": result.energyKept, "groups": groups,
        ]
        let data = try JSONSerialization.data(withJSONObject: root, options: [.sortedKeys, .prettyPrinted])
        return String(decoding: data, as: UTF8.self) + "\n"
    }

    /// The stdout table, one row per group and a total.
    public var table: [String] {
        var rows: [[String]] = [["group", "params before", "params after", "energy kept", "dropped"]]
        for g in result.groups {
            rows.append([g.name, String(parametersBefore[g.name] ?? 0), String(parametersAfter[g.name] ?? 0),
                         g.pruned ? PrunedSpecText.percent(g.energyKept) : "-", dropped(g)])
        }
        rows.append(["total", String(totalBefore), String(totalAfter), PrunedSpecText.percent(result.energyKept), ""])
        let widths = (0..<5).map { c in rows.map { $0[c].count }.max()! }
        return rows.map { row in
            row.enumerated().map { c, text in
                c == 0 || c == 4 ? text.padding(toLength: widths[c], withPad: " ", startingAt: 0)
                    : String(repeating: " ", count: widths[c] - text.count) + text
            }.joined(separator: "  ").trimmingCharacters(in: .whitespaces)
        }
    }

    /// "layers 0, 2 → attn_shared; 5 pairs cut 40 → 17 components".
    func dropped(_ g: GroupPruning) -> String {
        guard g.pruned else { return "not pruned" }
        if !g.modes.isEmpty {
            var parts: [String] = []
            if let name = g.sharedGroupName {
                parts.append("layers \(g.droppedLayers.map(String.init).joined(separator: ", ")) → \(name)")
            }
            let cut = g.modes.filter { $0.rankBefore != $0.rankAfter }
            if g.structure.pruner.cutsOneSharedRank, let m = cut.first {
                parts.append("rank \(m.rankBefore ?? 0) → \(m.rankAfter ?? 0)")
            } else if !cut.isEmpty {
                parts.append("ranks " + cut.map { "\($0.name) \($0.rankBefore ?? 0) → \($0.rankAfter ?? 0)" }.joined(separator: ", "))
            }
            return parts.isEmpty ? "nothing" : parts.joined(separator: "; ")
        }
        if !g.bonds.isEmpty {
            var parts: [String] = []
            if let name = g.sharedGroupName {
                parts.append("layers \(g.droppedLayers.map(String.init).joined(separator: ", ")) → \(name)")
            }
            let after = g.bonds.map(\.rankAfter)
            if after != g.originalBondRanks { parts.append("bond ranks \(g.originalBondRanks) → \(after)") }
            return parts.isEmpty ? "nothing" : parts.joined(separator: "; ")
        }
        var parts: [String] = []
        if let name = g.sharedGroupName {
            parts.append("layers \(g.droppedLayers.map(String.init).joined(separator: ", ")) → \(name)")
        }
        if let r = g.sharedRank, let before = g.pairs.first?.rankBefore {
            parts.append("shared rank \(before) → \(r)")
        }
        let cut = g.pairs.filter { $0.rankAfter != nil && $0.rankAfter != $0.rankBefore && g.sharedRank == nil }
        if !cut.isEmpty {
            let before = cut.map(\.rankBefore).reduce(0, +), after = cut.map { $0.rankAfter! }.reduce(0, +)
            let vanished = cut.filter(\.vanished).count
            parts.append("\(cut.count) pairs cut \(before) → \(after) components" + (vanished > 0 ? " (\(vanished) emptied)" : ""))
        }
        return parts.isEmpty ? "nothing" : parts.joined(separator: "; ")
    }
}
