/// The rules on a group's own keys: name, layers, modules, which options fit
/// which structure, alpha, and one shape for stacked structures.
enum GroupRules {
    static func checkName(_ group: AdapterGroup, _ diagnostics: inout DiagnosticCollector) {
        let at = group.location(of: "name")
        if SwiftIdentifier.isKeyword(group.name) {
            diagnostics.error("group name '\(group.name)' is a Swift keyword; pick another name", at: at)
        } else if !SwiftIdentifier.isLowerSnakeCase(group.name) {
            var message = "group name '\(group.name)' must be lower_snake_case (lowercase ASCII letters and digits "
                + "in words joined by '_', starting with a letter)"
            let fixed = snakeCase(group.name)
            if fixed != group.name, SwiftIdentifier.isLowerSnakeCase(fixed) { message += "; did you mean '\(fixed)'?" }
            diagnostics.error(message, at: at)
        }
    }

    /// `SelfAttn` / `self-attn` → `self_attn`.
    static func snakeCase(_ text: String) -> String {
        var words: [String] = []
        var current = ""
        for c in text {
            if !(c.isASCII && (c.isLetter || c.isNumber)) {
                if !current.isEmpty { words.append(current); current = "" }
            } else if c.isUppercase, !current.isEmpty, current.last?.isUppercase == false {
                words.append(current)
                current = String(c)
            } else {
                current.append(c)
            }
        }
        if !current.isEmpty { words.append(current) }
        return words.map { $0.lowercased() }.joined(separator: "_")
    }

    /// Group names are unique: weight keys start with them (`GROUP.core.0`).
    static func checkNamesAreUnique(_ groups: [AdapterGroup], _ diagnostics: inout DiagnosticCollector) {
        var first: [String: AdapterGroup] = [:]
        for group in groups {
            if let other = first[group.name] {
                let was = other.location(of: "name")
                diagnostics.error("group name '\(group.name)' is already used by the group at \(was.line):\(was.column)",
                                  at: group.location(of: "name"))
            } else {
                first[group.name] = group
            }
        }
    }

    /// Layers in 0..<model.layers, each once, at least one; returns the valid ones ascending.
    static func checkLayers(_ group: AdapterGroup, modelLayers: Int, modelIsValid: Bool,
                            _ diagnostics: inout DiagnosticCollector) -> [Int] {
        guard modelIsValid else { return [] }
        if group.layers.isEmpty {
            diagnostics.error("group '\(group.name)' covers no layers", at: group.location(of: "layers"))
            return []
        }
        var seen: Set<Int> = []
        // Out-of-range layers are reported once per place in the spec: a range such
        // as "0..<1048576" on a 32-layer model is one mistake, not a million. A
        // range's layers are consecutive and share one place, so runs are grouped
        // as they come, without hashing a location per layer.
        var run: (at: SourceLocation, layers: [Int])?
        func report() {
            guard let (at, layers) = run else { return }
            diagnostics.error("\(describe(layers.sorted())) out of range: the model has \(modelLayers) layers (0..<\(modelLayers))",
                              at: at)
        }
        var layers: [Int] = []  // the current run, appended to in place
        let everyLayer = group.keyLocations["layers[*]"]  // a range: one place for all
        for (i, layer) in group.layers.enumerated() {
            let at = everyLayer ?? group.location(of: "layers[\(i)]")
            if !(0..<modelLayers).contains(layer) {
                if run?.at != at {
                    run?.layers = layers
                    report()
                    run = (at, [])
                    layers = []
                }
                layers.append(layer)
            } else if !seen.insert(layer).inserted {
                diagnostics.error("layer \(layer) is listed twice in group '\(group.name)'", at: at)
            }
        }
        run?.layers = layers
        report()
        return seen.sorted()
    }

    /// "layer 7 is", "layers 4..<1048576 are" (consecutive), "layers 5, 9 and 12 are".
    private static func describe(_ layers: [Int]) -> String {
        guard layers.count > 1 else { return "layer \(layers[0]) is" }
        if layers.last! - layers.first! == layers.count - 1 {
            return "layers \(layers.first!)..<\(layers.last! + 1) are"
        }
        let shown = layers.prefix(5).map(String.init)
        let list = layers.count > 5
            ? shown.joined(separator: ", ") + " and \(layers.count - 5) more"
            : shown.dropLast().joined(separator: ", ") + " and " + shown.last!
        return "layers \(list) are"
    }

    /// Modules exist in the model (with a did-you-mean hint), each once, at least
    /// one; returns the known ones in group order.
    static func checkModules(_ group: AdapterGroup, model: ModelSpec,
                             _ diagnostics: inout DiagnosticCollector) -> [ModelModule] {
        if group.modules.isEmpty {
            diagnostics.error("group '\(group.name)' lists no modules", at: group.location(of: "modules"))
        }
        var modules: [ModelModule] = []
        for (i, name) in group.modules.enumerated() {
            let at = group.location(of: "modules[\(i)]")
            guard let module = model.module(named: name) else {
                let names = model.modules.map(\.name)
                let hint = DidYouMean.suggestion(for: name, among: names).map { "; did you mean '\($0)'?" }
                    ?? " (the model has \(names.joined(separator: ", ")))"
                diagnostics.error("unknown module '\(name)'\(hint)", at: at)
                continue
            }
            if modules.contains(where: { $0.name == name }) {
                diagnostics.error("module '\(name)' is listed twice in group '\(group.name)'", at: at)
                continue
            }
            modules.append(module)
        }
        return modules
    }

    /// `shared` and `overrides` are lora's; `factor` and `order` shape a stacked
    /// tensor that lora does not have.
    static func checkStructureOptions(_ group: AdapterGroup, _ diagnostics: inout DiagnosticCollector) {
        let structure = group.structure.rawValue
        if group.shared, group.structure != .lora {
            diagnostics.error("'shared' applies only to lora groups, not \(structure) (a \(structure) group already "
                              + "shares its cores across layers)", at: group.location(of: "shared"))
        }
        if !group.overrides.isEmpty, group.structure != .lora {
            diagnostics.error("'overrides' apply only to lora groups, not \(structure)", at: group.location(of: "overrides"))
        }
        if group.dora {
            checkDoRA(group, diagnostics: &diagnostics)
        }
        if group.structure == .lora {
            if group.outFactors != nil || group.inFactors != nil {
                diagnostics.error("'factor' applies only to tensor-train, cp and tucker groups; a lora group keeps "
                                  + "each module's [out, in]", at: group.location(of: "factor"))
            }
            if group.order != nil {
                diagnostics.error("'order' applies only to tensor-train, cp and tucker groups", at: group.location(of: "order"))
            }
        }
    }

    /// DoRA (DESIGN §5) rescales each pair's own W' row by row, so it needs a
    /// lora pair with its own base weight: not a tensor structure, not one
    /// adapter shared by several layers, and an init whose base stays W (LoftQ
    /// replaces the base by its quantised Q, whose norms `m` would then not be).
    private static func checkDoRA(_ group: AdapterGroup, diagnostics: inout DiagnosticCollector) {
        let at = group.location(of: "dora")
        if group.structure != .lora {
            diagnostics.error("'dora' applies only to lora groups, not \(group.structure.rawValue) (DoRA rescales each "
                              + "pair's W + s·B·A row by row)", at: at)
        } else if group.shared {
            diagnostics.error("'dora' and 'shared' do not go together: DoRA keeps a magnitude vector per (layer, module) "
                              + "pair, a shared group one adapter for many layers", at: at)
        } else if group.initialization.method == .loftq {
            diagnostics.error("'dora' does not go with init method 'loftq' (its base is the quantised Q, not W); "
                              + "use zero, gaussian, pissa, milora or olora", at: at)
        }
    }

    static func checkAlpha(_ alpha: Double?, at location: SourceLocation, what: String,
                           _ diagnostics: inout DiagnosticCollector) {
        guard let alpha, !(alpha.isFinite && alpha > 0) else { return }
        diagnostics.error("'\(what)' must be a positive finite number, found \(alpha)", at: location)
    }

    /// tensor-train, cp and tucker stack modules in one `module` mode, so every
    /// module of the group needs the first one's shape (DESIGN §2).
    static func checkOneShape(_ group: AdapterGroup, modules: [ModelModule],
                              _ diagnostics: inout DiagnosticCollector) -> Bool {
        guard let first = modules.first else { return true }
        var ok = true
        for module in modules.dropFirst()
        where (module.outFeatures, module.inFeatures) != (first.outFeatures, first.inFeatures) {
            let index = group.modules.firstIndex(of: module.name) ?? 0
            diagnostics.error("\(group.structure.rawValue) groups stack their modules, so all need one shape: "
                              + "'\(module.name)' is [\(module.outFeatures), \(module.inFeatures)] but "
                              + "'\(first.name)' is [\(first.outFeatures), \(first.inFeatures)] (lora groups may mix shapes)",
                              at: group.location(of: "modules[\(index)]"))
            ok = false
        }
        return ok
    }

    /// DESIGN §5: no tensor above 2^34 elements — here the group's whole delta
    /// tensor L·M·out·in, which init (tt-svd, hosvd, cp-als) and materialize form.
    static func checkDeltaTensorFits(_ group: AdapterGroup, modes: [ResolvedMode],
                                     _ diagnostics: inout DiagnosticCollector) {
        guard !SizeLimits.fits(modes.map(\.size)) else { return }
        let sizes = modes.map { "\($0.size)" }.joined(separator: "·")
        let names = modes.map(\.name.description).joined(separator: ", ")
        diagnostics.error("group '\(group.name)' has a delta tensor of \(sizes) elements (modes \(names)), "
                          + "above the tensor limit 2^34", at: group.location)
    }
}
