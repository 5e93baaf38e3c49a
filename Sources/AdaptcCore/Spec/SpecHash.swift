/// `adaptc.hash`: a hash of what a spec means for the weights (DESIGN §5) — model
/// shapes and each group's name, structure, layers, modules, factors, resolved
/// order and ranks, alpha, scaling, shared, dora and overrides; not comments, layout,
/// `init`, `prune`, `codegen` or `weights`. Weight files carry it so a file made
/// for another spec is refused instead of silently misread.
public enum SpecHash {
    /// The canonical text the hash is taken over, one fact a line.
    public static func canonicalText(_ checked: CheckedSpec) -> String {
        var lines = ["adaptc 1", "name \(checked.spec.name)", "layers \(checked.spec.model.layers)"]
        for m in checked.spec.model.modules {
            lines.append("module \(m.name) \(m.outFeatures) \(m.inFeatures)")
        }
        // Tasks change the weights' keys and shapes; specs without them hash as before.
        if !checked.spec.model.tasks.isEmpty { lines.append("tasks \(checked.spec.model.tasks.joined(separator: ","))") }
        for g in checked.groups {
            let group = g.group
            lines.append("group \(group.name) \(group.structure.rawValue)")
            lines.append("  layers \(group.layers.map(String.init).joined(separator: ","))")
            lines.append("  modules \(group.modules.joined(separator: ","))")
            lines.append("  factor out \((group.outFactors ?? []).map(String.init).joined(separator: ",")) in \((group.inFactors ?? []).map(String.init).joined(separator: ","))")
            lines.append("  order \(g.modes.map(\.description).joined(separator: ","))")
            lines.append("  ranks \(describe(g.ranks))")
            if group.tasks != nil { lines.append("  tasks \(g.tasks.joined(separator: ","))") }
            lines.append("  alpha \(group.alpha.map { String($0) } ?? "none") scaling \(group.scaling.rawValue) shared \(group.shared)")
            // Only DoRA groups get the line, so every other spec keeps its hash.
            if group.dora { lines.append("  dora true") }
            for o in group.overrides.sorted(by: { ($0.layer, $0.module) < ($1.layer, $1.module) }) {
                lines.append("  override \(o.layer).\(o.module) rank \(o.rank.map(String.init) ?? "-") alpha \(o.alpha.map { String($0) } ?? "-")")
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// 64-bit FNV-1a of the canonical text, as 16 hex digits. Not cryptographic:
    /// it guards against mistakes, not against forgery.
    public static func hash(_ checked: CheckedSpec) -> String {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in canonicalText(checked).utf8 {
            h ^= UInt64(byte)
            h = h &* 0x0000_0100_0000_01b3
        }
        let hex = String(h, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }

    private static func describe(_ ranks: ResolvedRanks) -> String {
        switch ranks {
        case .lora(let r): return "lora \(r)"
        case .tensorTrain(let bonds): return "tt \(bonds.map(String.init).joined(separator: ","))"
        case .cp(let r): return "cp \(r)"
        case .tucker(let rs): return "tucker \(rs.map { $0.map(String.init) ?? "full" }.joined(separator: ","))"
        }
    }
}
