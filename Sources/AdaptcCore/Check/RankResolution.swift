/// `rank:` / `ranks:` → ResolvedRanks, by structure (DESIGN §2):
/// - lora: `rank: r` only (per-pair ranks are `overrides`);
/// - tensor-train: bond k (between modes k and k+1) is at most
///   min(∏ sizes left of it, ∏ sizes right of it); a uniform `rank:` is clipped
///   to that bound (with a note), a `ranks:` list gives one rank per bond and one
///   above its bound is an error;
/// - cp: `rank: R` only;
/// - tucker: `rank: R` gives min(R, n_k) per mode; `ranks:` maps every mode of
///   size > 1 to a rank ≤ n_k or `full` (no factor).
enum RankResolution {
    static func lora(_ group: AdapterGroup, modules: [ModelModule],
                     _ diagnostics: inout DiagnosticCollector) -> ResolvedRanks? {
        guard let r = uniformRank(group, hint: "per-pair ranks go in 'overrides'", &diagnostics) else { return nil }
        // ΔW = B·A cannot have a higher rank than min(out, in): legal, but wasted parameters.
        // (pissa and milora make it an error, reported by InitRules.)
        let takesTriplets = [.pissa, .milora].contains(group.initialization.method)
        if !takesTriplets, let smallest = modules.min(by: { min($0.outFeatures, $0.inFeatures) < min($1.outFeatures, $1.inFeatures) }),
           r > min(smallest.outFeatures, smallest.inFeatures) {
            diagnostics.warning("rank \(r) exceeds min(out, in) = \(min(smallest.outFeatures, smallest.inFeatures)) of "
                                + "module '\(smallest.name)'; its ΔW cannot have a higher rank", at: group.location(of: "rank"))
        }
        return .lora(r)
    }

    static func resolve(_ group: AdapterGroup, modes: ModeResolution.Modes,
                        _ diagnostics: inout DiagnosticCollector) -> ResolvedRanks? {
        switch group.structure {
        case .lora: return nil
        case .tensorTrain: return tensorTrain(group, modes: modes.kept, &diagnostics)
        case .cp: return uniformRank(group, hint: "a cp group has one R for all its factors", &diagnostics).map(ResolvedRanks.cp)
        case .tucker: return tucker(group, modes: modes, &diagnostics)
        }
    }

    // MARK: Shared checks

    /// A rank in 1...1,048,576, or nil with an error.
    private static func checkRank(_ r: Int, what: String, at location: SourceLocation,
                                  _ diagnostics: inout DiagnosticCollector) -> Int? {
        if r < 1 {
            diagnostics.error("\(what) must be a positive integer, found \(r)", at: location)
            return nil
        }
        if r > SizeLimits.maximumDimension {
            diagnostics.error("\(what) \(SizeLimits.grouped(r)) is above the dimension limit "
                              + SizeLimits.grouped(SizeLimits.maximumDimension), at: location)
            return nil
        }
        return r
    }

    /// The group's `rank: R` where only that form fits; errors for a missing rank or `ranks:`.
    private static func uniformRank(_ group: AdapterGroup, hint: String,
                                    _ diagnostics: inout DiagnosticCollector) -> Int? {
        switch group.rank {
        case nil:
            missingRank(group, &diagnostics)
            return nil
        case .uniform(let r):
            return checkRank(r, what: "'rank'", at: group.location(of: "rank"), &diagnostics)
        case .bonds, .perMode:
            diagnostics.error("\(group.structure.rawValue) groups take 'rank: R', not 'ranks:' (\(hint))",
                              at: group.location(of: "ranks"))
            return nil
        }
    }

    private static func missingRank(_ group: AdapterGroup, _ diagnostics: inout DiagnosticCollector) {
        let forms: String
        switch group.structure {
        case .lora, .cp: forms = "'rank: R'"
        case .tensorTrain: forms = "'rank: R' or 'ranks: [r1, …]' (one per bond)"
        case .tucker: forms = "'rank: R' or 'ranks: {MODE: r | full, …}'"
        }
        diagnostics.error("group '\(group.name)' needs a rank: \(forms)", at: group.location)
    }

    // MARK: Tensor-train

    /// Bond k's bound, min(∏ sizes[0...k], ∏ sizes[k+1...]): a TT-rank cannot exceed
    /// the rank of the unfolding at that bond (Oseledets 2011, Theorem 2.1).
    static func bondBounds(_ sizes: [Int]) -> [Int] {
        guard sizes.count >= 2 else { return [] }
        return (0..<sizes.count - 1).map { k in
            min(SizeLimits.saturatingProduct(Array(sizes[...k])), SizeLimits.saturatingProduct(Array(sizes[(k + 1)...])))
        }
    }

    /// The rank each bond can actually carry given its neighbours: core k is
    /// `[r_{k−1}, n_k, r_k]`, so bond k is at most `r_{k−1}·n_k` (the rank of
    /// core k's left unfolding) and at most `n_{k+1}·r_{k+1}` (core k+1's right
    /// one), with r₋₁ = r_d = 1; a bond cut down shrinks what its neighbours can
    /// reach, so the rule is applied until nothing changes (it only decreases).
    /// Returns, per bond, that rank and which side limits it. Bonds within
    /// `bondBounds` can still exceed it when `ranks:` lists them one by one.
    static func reachableBondRanks(_ ranks: [Int], modes: [ResolvedMode]) -> [(rank: Int, why: String)] {
        precondition(modes.count == ranks.count + 1)
        let sizes = modes.map(\.size)
        var reach = ranks.map { (rank: $0, why: "") }
        var changed = true
        while changed {
            changed = false
            for k in reach.indices {
                let left = k == 0 ? 1 : reach[k - 1].rank, right = k == reach.count - 1 ? 1 : reach[k + 1].rank
                let fromLeft = SizeLimits.saturatingProduct([left, sizes[k]])
                let fromRight = SizeLimits.saturatingProduct([sizes[k + 1], right])
                if fromLeft < reach[k].rank, fromLeft <= fromRight {
                    reach[k] = (fromLeft, k == 0 ? "the size of \(modes[k].name)"
                                          : "bond \(k - 1)'s \(left) × \(modes[k].name)'s \(sizes[k]), from the left")
                    changed = true
                } else if fromRight < reach[k].rank {
                    reach[k] = (fromRight, k == reach.count - 1 ? "the size of \(modes[k + 1].name)"
                                           : "\(modes[k + 1].name)'s \(sizes[k + 1]) × bond \(k + 1)'s \(right), from the right")
                    changed = true
                }
            }
        }
        return reach
    }

    private static func tensorTrain(_ group: AdapterGroup, modes: [ResolvedMode],
                                     _ diagnostics: inout DiagnosticCollector) -> ResolvedRanks? {
        guard modes.count >= 2 else {
            diagnostics.error("a tensor-train needs at least two modes of size > 1; group '\(group.name)' has "
                              + (modes.isEmpty ? "none" : modes.map(\.description).joined(separator: ", ")),
                              at: group.location(of: "structure"))
            return nil
        }
        let bounds = bondBounds(modes.map(\.size))
        func bondName(_ k: Int) -> String { "bond \(k) (\(modes[k].name)|\(modes[k + 1].name))" }

        switch group.rank {
        case nil:
            missingRank(group, &diagnostics)
            return nil
        case .uniform(let r):
            guard let r = checkRank(r, what: "'rank'", at: group.location(of: "rank"), &diagnostics) else { return nil }
            let bonds = bounds.map { min(r, $0) }
            let clipped = bounds.indices.filter { bounds[$0] < r }
            if !clipped.isEmpty {
                let list = clipped.map { "\(bondName($0)) to \(bounds[$0])" }.joined(separator: ", ")
                diagnostics.note("rank \(r) clipped to min(∏ sizes left, ∏ sizes right) at \(list)",
                                 at: group.location(of: "rank"))
            }
            return .tensorTrain(bonds: bonds)
        case .bonds(let ranks):
            guard ranks.count == bounds.count else {
                diagnostics.error("a tensor-train over \(modes.count) modes (\(modes.map(\.name.description).joined(separator: ", "))) "
                                  + "has \(bounds.count) bonds, but 'ranks' lists \(ranks.count)", at: group.location(of: "ranks"))
                return nil
            }
            var ok = true
            for (k, r) in ranks.enumerated() {
                let at = group.location(of: "ranks[\(k)]")
                guard checkRank(r, what: "bond rank", at: at, &diagnostics) != nil else { ok = false; continue }
                if r > bounds[k] {
                    diagnostics.error("bond rank \(r) at \(bondName(k)) is above its bound min(∏ sizes left, ∏ sizes right) = \(bounds[k])",
                                      at: at)
                    ok = false
                }
            }
            guard ok else { return nil }
            for (k, reach) in reachableBondRanks(ranks, modes: modes).enumerated() where reach.rank < ranks[k] {
                diagnostics.warning("bond rank \(ranks[k]) at \(bondName(k)) can reach only \(reach.rank) (\(reach.why)); "
                                    + "the rest is counted in parameters but never used", at: group.location(of: "ranks[\(k)]"))
            }
            return .tensorTrain(bonds: ranks)
        case .perMode:
            diagnostics.error("tensor-train 'ranks:' is a list with one rank per bond, not a mapping of modes",
                              at: group.location(of: "ranks"))
            return nil
        }
    }

    // MARK: Tucker

    private static func tucker(_ group: AdapterGroup, modes: ModeResolution.Modes,
                               _ diagnostics: inout DiagnosticCollector) -> ResolvedRanks? {
        switch group.rank {
        case nil:
            missingRank(group, &diagnostics)
            return nil
        case .uniform(let r):
            guard let r = checkRank(r, what: "'rank'", at: group.location(of: "rank"), &diagnostics) else { return nil }
            return .tucker(modes.kept.map { min(r, $0.size) })
        case .bonds:
            diagnostics.error("tucker 'ranks:' is a mapping from modes to a rank or full, such as {layer: full, out: 16, in: 16}",
                              at: group.location(of: "ranks"))
            return nil
        case .perMode(let entries):
            var given: [ModeName: Int?] = [:]
            var ok = true
            let names = modes.all.map(\.name.description).joined(separator: ", ")
            for (name, rank) in entries {
                let at = group.location(of: "ranks.\(name)")
                guard let mode = modes.all.first(where: { $0.name == name }) else {
                    var hint = ""
                    if name.factor == nil, name.kind == .out || name.kind == .in,
                       modes.all.contains(where: { $0.name.kind == name.kind && $0.name.factor != nil }) {
                        hint = "; \(name) is factorised, so give a rank to each of its factors"
                    }
                    diagnostics.error("group '\(group.name)' has no mode '\(name)'\(hint) (its modes: \(names))", at: at)
                    ok = false
                    continue
                }
                guard given[name] == nil else {
                    diagnostics.error("mode '\(name)' is given a rank twice in 'ranks'", at: at)
                    ok = false
                    continue
                }
                switch rank {
                case .full:
                    given[name] = .some(nil)
                case .rank(let r):
                    guard let r = checkRank(r, what: "rank of mode '\(name)'", at: at, &diagnostics) else { ok = false; continue }
                    if r > mode.size {
                        diagnostics.error("rank \(r) of mode '\(name)' is above its size \(mode.size) (write full to keep it whole)",
                                          at: at)
                        ok = false
                    }
                    given[name] = .some(r)
                }
            }
            // Missing modes are only worth a message once every entry names a mode.
            let missing = modes.kept.filter { given[$0.name] == nil }
            if ok, !missing.isEmpty {
                diagnostics.error("'ranks' must give every mode of size > 1 a rank or full; missing "
                                  + missing.map { "'\($0.name)'" }.joined(separator: ", "), at: group.location(of: "ranks"))
                ok = false
            }
            return ok ? .tucker(modes.kept.map { given[$0.name] ?? nil }) : nil
        }
    }
}
