import Yams

/// `rank: R` or `ranks:` — a list (tensor-train bonds) or a mapping of modes to
/// an integer or `full` (tucker). Which form fits which structure is Check's call.
enum RankParser {
    static func parse(rank: NodeReader.Entry?, ranks: NodeReader.Entry?, reader: inout NodeReader,
                      locations: inout [String: SourceLocation]) -> RankSpec? {
        if let rank, let ranks {
            reader.error("give either 'rank' or 'ranks', not both (rank is at \(rank.keyLocation.line):\(rank.keyLocation.column))",
                         at: ranks.keyLocation)
            return nil
        }
        if let rank {
            return reader.int(rank).map(RankSpec.uniform)
        }
        guard let ranks else { return nil }
        switch ranks.value {
        case .sequence:
            guard let bonds = reader.intList(ranks) else { return nil }
            for (i, bond) in bonds.enumerated() { locations["ranks[\(i)]"] = bond.location }
            return .bonds(bonds.map(\.value))
        case .mapping:
            return perMode(ranks, reader: &reader, locations: &locations)
        default:
            reader.error("'ranks' must be a list of bond ranks (tensor-train) or a mapping from modes to ranks (tucker), "
                         + "found \(reader.found(ranks.value))", at: ranks.valueLocation)
            return nil
        }
    }

    /// `{layer: full, out: 16, in: 16}` in file order.
    private static func perMode(_ ranks: NodeReader.Entry, reader: inout NodeReader,
                                locations: inout [String: SourceLocation]) -> RankSpec? {
        guard let entries = reader.entries(of: ranks.value, at: ranks.valueLocation, what: "'ranks'",
                                           prefix: "ranks.") else { return nil }
        var modes: [(ModeName, TuckerRank)] = []
        var ok = true
        for entry in entries {
            locations["ranks.\(entry.key)"] = entry.keyLocation
            guard let mode = ModeName(parsing: entry.key) else {
                reader.error(unknownModeMessage(entry.key, in: "'ranks'"), at: entry.keyLocation)
                ok = false
                continue
            }
            if case .scalar(let scalar) = entry.value {
                switch YAMLScalar(scalar) {
                case .int(let r):
                    modes.append((mode, .rank(r)))
                    continue
                case .string("full"):
                    modes.append((mode, .full))
                    continue
                default: break
                }
            }
            reader.error("\(entry.what) must be an integer or full, found \(reader.found(entry.value))",
                         at: entry.valueLocation)
            ok = false
        }
        return ok ? .perMode(modes) : nil
    }

    static let modeBases = ["layer", "module", "out", "in", "task"]

    /// "unknown mode 'outt' in 'order'; did you mean 'out'? (…)", the hint taken on
    /// the part before a factor index so `ot.1` suggests `out.1`.
    static func unknownModeMessage(_ text: String, in what: String) -> String {
        let parts = text.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        var hint = ""
        if let base = DidYouMean.suggestion(for: parts[0], among: modeBases) {
            let suggestion = parts.count == 2 && (base == "out" || base == "in") ? "\(base).\(parts[1])" : base
            if suggestion != text, ModeName(parsing: suggestion) != nil { hint = "; did you mean '\(suggestion)'?" }
        }
        return "unknown mode '\(text)' in \(what)\(hint) (modes are layer, module, out, in, task, and out.K, in.K for factors)"
    }
}
