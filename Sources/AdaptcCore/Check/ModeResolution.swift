/// The modes of a stacked group's delta tensor D (DESIGN §2): `layer` (L, the
/// group's layer count), `module` (M), then `out` and `in` — or their factors
/// `out.0 …`, `in.0 …` (row-major, `out.0` most significant) when `factor:`
/// splits them — in the order `order:` gives (default `[layer, module, out…, in…]`).
/// Modes of size 1 are dropped. A group with tasks has one more mode, `task`
/// (T), first by default: `[task, layer, module, out…, in…]`.
enum ModeResolution {
    struct Modes {
        /// Every mode, size-1 ones included (tucker `ranks:` may name them): resolved
        /// order, then any size-1 mode `order` left out.
        var all: [ResolvedMode]
        /// The modes of D: `all` without size-1 modes. ResolvedGroup.modes.
        var kept: [ResolvedMode]
    }

    /// - Parameter taskCount: T for a group with tasks, nil without (then `task` in `order` is an error).
    static func resolve(_ group: AdapterGroup, modules: [ModelModule], taskCount: Int? = nil,
                        _ diagnostics: inout DiagnosticCollector) -> Modes? {
        guard let shape = modules.first else { return nil }
        let outModes = factorModes(.out, factors: group.outFactors, size: shape.outFeatures, group: group, &diagnostics)
        let inModes = factorModes(.in, factors: group.inFactors, size: shape.inFeatures, group: group, &diagnostics)
        guard let outModes, let inModes else { return nil }

        let layer = ResolvedMode(name: .layer, size: group.layers.count)
        let module = ResolvedMode(name: .module, size: modules.count)
        let task = taskCount.map { [ResolvedMode(name: .task, size: $0)] } ?? []
        let natural = task + [layer, module] + outModes + inModes
        guard let ordered = order(group, natural: natural, outModes: outModes, inModes: inModes, &diagnostics) else {
            return nil
        }
        // Size-1 modes that `order` left out still exist (tucker `ranks:` may name them).
        let unlisted = natural.filter { !ordered.contains($0) }
        return Modes(all: ordered + unlisted, kept: ordered.filter { $0.size > 1 })
    }

    /// `out` as one mode, or `out.0 …` when factorised; factors must be ≥ 1 and
    /// multiply to the modules' size.
    private static func factorModes(_ kind: ModeName.Kind, factors: [Int]?, size: Int, group: AdapterGroup,
                                    _ diagnostics: inout DiagnosticCollector) -> [ResolvedMode]? {
        let side = kind == .out ? "out" : "in"
        guard let factors else { return [ResolvedMode(name: ModeName(kind), size: size)] }
        let key = "factor.\(side)"
        guard !factors.isEmpty else {
            diagnostics.error("'\(key)' lists no factors", at: group.location(of: key))
            return nil
        }
        var ok = true
        for (i, factor) in factors.enumerated() where factor < 1 {
            diagnostics.error("factor \(factor) in '\(key)' must be at least 1", at: group.location(of: "\(key)[\(i)]"))
            ok = false
        }
        guard ok else { return nil }
        let product = SizeLimits.product(factors)
        guard product == size else {
            let written = factors.map(String.init).joined(separator: "·")
            let value = product.map { " = \($0)" } ?? ", which overflows"
            diagnostics.error("'\(key)' multiplies to \(written)\(value), but the modules' \(side) size is \(size)",
                              at: group.location(of: key))
            return nil
        }
        return factors.enumerated().map { ResolvedMode(name: ModeName(kind, factor: $0.offset), size: $0.element) }
    }

    /// Applies `order:`: a permutation of the modes in which `out`/`in` stand for
    /// all their factors in sequence. Every mode of size > 1 appears exactly once;
    /// size-1 modes may appear (at most once) or be left out.
    private static func order(_ group: AdapterGroup, natural: [ResolvedMode], outModes: [ResolvedMode],
                              inModes: [ResolvedMode], _ diagnostics: inout DiagnosticCollector) -> [ResolvedMode]? {
        guard let written = group.order else { return natural }
        var ordered: [ResolvedMode] = []
        // Which entry of `order` placed each mode, to explain a repeat through a whole `out`/`in`.
        var placedBy: [ModeName: ModeName] = [:]
        var ok = true
        for (i, name) in written.enumerated() {
            let at = group.location(of: "order[\(i)]")
            let expanded: [ResolvedMode]
            switch (name.kind, name.factor) {
            case (.layer, _), (.module, _):
                expanded = natural.filter { $0.name == name }
            case (.task, _):
                expanded = natural.filter { $0.name == name }
                guard !expanded.isEmpty else {
                    diagnostics.error("'task' is a mode only of a group with tasks, and group '\(group.name)' has none "
                                      + "(add 'tasks: all' or a list of tasks from 'model.tasks')", at: at)
                    ok = false
                    continue
                }
            case (.out, nil):
                expanded = outModes
            case (.in, nil):
                expanded = inModes
            case (let kind, let factor?):
                let side = kind == .out ? "out" : "in"
                let factors = kind == .out ? outModes : inModes
                guard factors.first?.name.factor != nil else {
                    diagnostics.error("'\(name)' names a factor, but \(side) is not factorised (write '\(side)', "
                                      + "or split it with 'factor: {\(side): [...]}')", at: at)
                    ok = false
                    continue
                }
                guard factor >= 0, factor < factors.count else {
                    diagnostics.error("'\(name)' is not a mode: \(side) has \(factors.count) factors "
                                      + "(\(side).0 … \(side).\(factors.count - 1))", at: at)
                    ok = false
                    continue
                }
                expanded = [factors[factor]]
            }
            for mode in expanded {
                if let earlier = placedBy[mode.name] {
                    let wholeSide = [earlier, name].first { $0.factor == nil && ($0.kind == .out || $0.kind == .in) }
                    let note = mode.name.factor == nil ? "" : wholeSide.map { " ('\($0)' stands for all its factors)" } ?? ""
                    diagnostics.error("mode '\(mode.name)' appears twice in 'order'\(note)", at: at)
                    ok = false
                } else {
                    ordered.append(mode)
                    placedBy[mode.name] = name
                }
            }
        }
        // Missing modes are only worth a message once every entry is valid.
        let missing = natural.filter { $0.size > 1 && !ordered.contains($0) }
        if ok, !missing.isEmpty {
            diagnostics.error("'order' must list every mode once; missing \(missing.map { "'\($0.name)'" }.joined(separator: ", ")) "
                              + "(all modes: \(natural.map(\.name.description).joined(separator: ", ")))",
                              at: group.location(of: "order"))
            ok = false
        }
        return ok ? ordered : nil
    }
}
