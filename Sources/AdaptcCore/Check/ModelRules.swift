/// The rules on `model:` — layer count, module names and their enum cases,
/// shapes, and the weights key template (DESIGN §5).
enum ModelRules {
    /// Checks the model; returns whether its layer count is usable, so group
    /// rules do not pile errors about layers on top of a broken `model.layers`.
    static func check(_ spec: AdapterSpec, _ diagnostics: inout DiagnosticCollector) -> Bool {
        let model = spec.model
        func at(_ key: String) -> SourceLocation { spec.keyLocations[key] ?? model.location }
        let maximum = SizeLimits.maximumDimension

        let layersAreValid = (1...maximum).contains(model.layers)
        if !layersAreValid {
            diagnostics.error("'model.layers' must be a layer count in 1...\(SizeLimits.grouped(maximum)), found \(model.layers)",
                              at: at("model.layers"))
        }
        if model.modules.isEmpty {
            diagnostics.error("'model.modules' lists no modules", at: at("model.modules"))
        }

        var modulesByCase: [String: ModelModule] = [:]
        var seenNames: Set<String> = []
        for module in model.modules {
            guard seenNames.insert(module.name).inserted else {
                diagnostics.error("module '\(module.name)' is declared twice", at: module.location)
                continue
            }
            checkName(module, &diagnostics, modulesByCase: &modulesByCase)
            checkShape(module, spec: spec, &diagnostics)
        }

        if let template = model.weightsKey {
            checkWeightsKey(template, at: at("model.weights.key"), &diagnostics)
        }
        checkInputSets(model, &diagnostics)
        return layersAreValid
    }

    /// `model.inputs`: each set names declared modules of one input width, and a
    /// module is in at most one set (it reads one input).
    private static func checkInputSets(_ model: ModelSpec, _ diagnostics: inout DiagnosticCollector) {
        var setOf: [String: String] = [:]
        for set in model.inputSets {
            if set.modules.isEmpty {
                diagnostics.error("input set '\(set.name)' lists no modules", at: set.location)
            }
            var width: (Int, String)?
            for (name, location) in zip(set.modules, set.locations) {
                guard let module = model.module(named: name) else {
                    let hint = DidYouMean.suggestion(for: name, among: model.modules.map(\.name)).map { "; did you mean '\($0)'?" } ?? ""
                    diagnostics.error("input set '\(set.name)' names module '\(name)', which 'model.modules' does not declare\(hint)",
                                      at: location)
                    continue
                }
                if let other = setOf[name] {
                    diagnostics.error(other == set.name ? "module '\(name)' is listed twice in input set '\(set.name)'"
                                      : "module '\(name)' is in input sets '\(other)' and '\(set.name)'; a module reads one input",
                                      at: location)
                    continue
                }
                setOf[name] = set.name
                if let (w, first) = width, w != module.inFeatures {
                    diagnostics.error("input set '\(set.name)': module '\(name)' reads \(module.inFeatures) features but '\(first)' reads \(w); "
                                      + "modules that share an input have one input size", at: location)
                } else if width == nil {
                    width = (module.inFeatures, name)
                }
            }
        }
    }

    /// Module names are identifiers or dotted paths of them, and their enum case
    /// (ModelModule.caseName: `attention.self.query` → `attentionSelfQuery`) must be
    /// a non-keyword identifier that no other module also becomes.
    private static func checkName(_ module: ModelModule, _ diagnostics: inout DiagnosticCollector,
                                  modulesByCase: inout [String: ModelModule]) {
        guard SwiftIdentifier.isDottedPath(module.name) else {
            diagnostics.error("module name '\(module.name)' must be an identifier or a dotted path of identifiers "
                              + "(ASCII letters, digits and '_', such as attention.self.query)", at: module.location)
            return
        }
        let caseName = module.caseName
        if SwiftIdentifier.isKeyword(caseName) {
            diagnostics.error("module '\(module.name)' would become the enum case '\(caseName)', which is a Swift keyword",
                              at: module.location)
            return
        }
        if let other = modulesByCase[caseName] {
            diagnostics.error("modules '\(other.name)' (\(other.location.line):\(other.location.column)) and "
                              + "'\(module.name)' would both become the enum case '\(caseName)'; rename one",
                              at: module.location)
            return
        }
        modulesByCase[caseName] = module
    }

    /// out and in in 1...1,048,576, and out·in within the tensor limit (one pair's ΔW).
    private static func checkShape(_ module: ModelModule, spec: AdapterSpec, _ diagnostics: inout DiagnosticCollector) {
        let maximum = SizeLimits.maximumDimension
        var ok = true
        for (index, side, size) in [(0, "out", module.outFeatures), (1, "in", module.inFeatures)] {
            let location = spec.keyLocations["model.modules.\(module.name)[\(index)]"] ?? module.location
            if size < 1 {
                diagnostics.error("module '\(module.name)' has \(side) size \(size); sizes must be positive", at: location)
                ok = false
            } else if size > maximum {
                diagnostics.error("module '\(module.name)' has \(side) size \(SizeLimits.grouped(size)), above the "
                                  + "dimension limit \(SizeLimits.grouped(maximum))", at: location)
                ok = false
            }
        }
        if ok, !SizeLimits.fits([module.outFeatures, module.inFeatures]) {
            diagnostics.error("module '\(module.name)' has \(module.outFeatures)·\(module.inFeatures) weights, above the "
                              + "tensor limit 2^34 elements", at: module.location)
        }
    }

    /// The base checkpoint key of each pair: `{layer}` and `{module}` are both
    /// needed (or two pairs would share a tensor) and nothing else may be in braces.
    private static func checkWeightsKey(_ template: String, at location: SourceLocation,
                                        _ diagnostics: inout DiagnosticCollector) {
        for placeholder in ["{layer}", "{module}"] where !template.contains(placeholder) {
            diagnostics.error("'model.weights.key' must contain \(placeholder), found '\(template)'", at: location)
        }
        var rest = Substring(template)
        while let open = rest.firstIndex(of: "{") {
            guard let close = rest[open...].firstIndex(of: "}") else {
                diagnostics.error("'model.weights.key' has an unclosed '{' in '\(template)'", at: location)
                return
            }
            let placeholder = String(rest[open...close])
            if placeholder != "{layer}", placeholder != "{module}" {
                diagnostics.error("'model.weights.key' has the unknown placeholder \(placeholder); "
                                  + "only {layer} and {module} are filled in", at: location)
            }
            rest = rest[rest.index(after: close)...]
        }
    }
}
