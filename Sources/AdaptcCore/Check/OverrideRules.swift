/// `overrides:` of a lora group — PEFT's rank_pattern / alpha_pattern for one
/// pair each. A key must name a pair of its own group, once; a `shared: true`
/// group has one (A, B) per module for all its layers, so no pair of it can
/// differ and it takes no overrides (DESIGN §5).
enum OverrideRules {
    static func check(_ group: AdapterGroup, modules: [ModelModule], _ diagnostics: inout DiagnosticCollector) {
        guard !group.overrides.isEmpty else { return }
        if group.shared {
            diagnostics.error("a shared lora group takes no overrides: one (A, B) per module serves all its layers",
                              at: group.location(of: "overrides"))
            return
        }
        var seen: Set<Pair> = []
        for override in group.overrides {
            let pair = Pair(layer: override.layer, module: override.module)
            let at = override.location
            if !group.layers.contains(override.layer) {
                diagnostics.error("override '\(pair.key)' names no pair of group '\(group.name)': layer \(override.layer) "
                                  + "is not one of its layers", at: at)
                continue
            }
            if !group.modules.contains(override.module) {
                let hint = DidYouMean.suggestion(for: override.module, among: group.modules).map { "; did you mean '\($0)'?" }
                    ?? " (its modules: \(group.modules.joined(separator: ", ")))"
                diagnostics.error("override '\(pair.key)' names no pair of group '\(group.name)': module "
                                  + "'\(override.module)' is not one of its modules\(hint)", at: at)
                continue
            }
            if !seen.insert(pair).inserted {
                diagnostics.error("pair \(pair.key) is overridden twice", at: at)
                continue
            }
            let prefix = "overrides.\(pair.key)."
            if override.rank == nil, override.alpha == nil {
                diagnostics.warning("override '\(pair.key)' sets neither rank nor alpha", at: at)
            }
            if let rank = override.rank {
                let rankAt = group.location(of: prefix + "rank")
                if rank < 1 {
                    diagnostics.error("override rank for \(pair.key) must be a positive integer, found \(rank)", at: rankAt)
                } else if rank > SizeLimits.maximumDimension {
                    diagnostics.error("override rank \(SizeLimits.grouped(rank)) for \(pair.key) is above the dimension "
                                      + "limit \(SizeLimits.grouped(SizeLimits.maximumDimension))", at: rankAt)
                }
            }
            GroupRules.checkAlpha(override.alpha, at: group.location(of: prefix + "alpha"),
                                  what: "overrides.\(pair.key).alpha", &diagnostics)
        }
    }
}
