/// `init:` (DESIGN §3): the method must fit the structure, `svd` and its
/// parameters only go with SVD-based methods, and `recycle` needs `from` paths
/// relative to the spec's folder.
enum InitRules {
    /// Methods per structure. pissa, milora and olora split one pair's W, so they need
    /// a non-shared lora group; the tensor methods decompose the stacked weights.
    static func methods(for group: AdapterGroup) -> [InitMethod] {
        switch group.structure {
        case .lora:
            return group.shared ? [.zero, .gaussian, .recycle] : [.zero, .gaussian, .pissa, .milora, .olora, .loftq, .recycle]
        case .tensorTrain: return [.zero, .gaussian, .ttSVD, .loftq, .recycle]
        case .cp: return [.zero, .gaussian, .cpALS, .loftq, .recycle]
        case .tucker: return [.zero, .gaussian, .hosvd, .hooi, .loftq, .recycle]
        }
    }

    /// The methods that run an SVD (cp-als starts from SVD factors; recycle
    /// decomposes the stacked ΔW of the adapters it reads).
    static let svdMethods: [InitMethod] = [.pissa, .milora, .ttSVD, .hosvd, .hooi, .cpALS, .recycle, .loftq]

    /// The methods that decompose the stacked base weights into a tensor network
    /// (DESIGN §3), and so take `residual: true | false`.
    static let tensorMethods: [InitMethod] = [.ttSVD, .hosvd, .hooi, .cpALS]

    static func check(_ group: AdapterGroup, modules: [ModelModule], _ diagnostics: inout DiagnosticCollector) {
        let settings = group.initialization
        let method = settings.method
        let allowed = methods(for: group)
        if !allowed.contains(method) {
            let kind = group.structure == .lora && group.shared ? "shared lora" : group.structure.rawValue
            diagnostics.error("init method '\(method.rawValue)' does not fit a \(kind) group (use "
                              + allowed.map(\.rawValue).joined(separator: ", ") + ")", at: group.location(of: "init.method"))
        }

        let usesSVD = svdMethods.contains(method)
        if settings.svd != nil, !usesSVD {
            diagnostics.error("'svd' applies only to SVD-based init methods (\(svdMethods.map(\.rawValue).joined(separator: ", "))), "
                              + "not '\(method.rawValue)'", at: group.location(of: "init.svd"))
        }
        for (key, value) in [("oversampling", settings.oversampling), ("power_iterations", settings.powerIterations)] {
            guard let value else { continue }
            let at = group.location(of: "init.\(key)")
            if value < 0 {
                diagnostics.error("'init.\(key)' must be a non-negative integer, found \(value)", at: at)
            } else if value > SizeLimits.maximumDimension {
                diagnostics.error("'init.\(key)' \(SizeLimits.grouped(value)) is above the limit "
                                  + SizeLimits.grouped(SizeLimits.maximumDimension), at: at)
            } else if !usesSVD {
                diagnostics.error("'init.\(key)' applies only to SVD-based init methods, not '\(method.rawValue)'", at: at)
            } else if settings.svd == .exact {
                diagnostics.warning("'init.\(key)' is ignored with 'svd: exact' (it tunes the randomized SVD)", at: at)
            }
        }

        checkFrom(group, &diagnostics)
        checkQuantiser(group, modules: modules, &diagnostics)
        checkTensorSettings(group, &diagnostics)
        if [.pissa, .milora, .olora, .loftq].contains(method), group.structure == .lora {
            checkTripletsExist(group, modules: modules, &diagnostics)
        }
    }

    /// `recycle` reads adapters from `from`; no other method does. Paths are
    /// relative to the spec's folder (DESIGN §5), so an absolute path is an error.
    private static func checkFrom(_ group: AdapterGroup, _ diagnostics: inout DiagnosticCollector) {
        let settings = group.initialization
        if settings.method == .recycle, settings.from.isEmpty {
            diagnostics.error("init method 'recycle' needs 'from': the adapter files or PEFT folders to recycle",
                              at: group.location(of: settings.from.isEmpty && group.keyLocations["init.from"] != nil
                                                 ? "init.from" : "init.method"))
            return
        }
        if settings.method != .recycle, !settings.from.isEmpty {
            diagnostics.error("'init.from' applies only to init method 'recycle', not '\(settings.method.rawValue)'",
                              at: group.location(of: "init.from"))
            return
        }
        for (i, path) in settings.from.enumerated() {
            let at = group.location(of: "init.from[\(i)]")
            if path.isEmpty {
                diagnostics.error("'init.from' has an empty path", at: at)
            } else if path.hasPrefix("/") || path.hasPrefix("~") || path.hasPrefix("\\") {
                diagnostics.error("path '\(path)' in 'init.from' must be relative to the spec's folder, not absolute", at: at)
            }
        }
    }

    /// `loftq`'s `quantiser` and `iterations` (and only loftq's): 4 or 8 bits, a
    /// group that divides every module's `in` (the quantiser's groups run along
    /// `in`, row by row), nf4 only with 4 bits, at least one iteration.
    private static func checkQuantiser(_ group: AdapterGroup, modules: [ModelModule],
                                       _ diagnostics: inout DiagnosticCollector) {
        let settings = group.initialization
        guard settings.method == .loftq else {
            let own = settings.method == .cpALS ? ["quantiser"] : ["quantiser", "iterations"]
            for key in own where group.keyLocations["init.\(key)"] != nil {
                diagnostics.error("'init.\(key)' applies only to init method 'loftq', not '\(settings.method.rawValue)'",
                                  at: group.location(of: "init.\(key)"))
            }
            return
        }
        if let iterations = settings.iterations, !(1...1000).contains(iterations) {
            diagnostics.error("'init.iterations' must be between 1 and 1000, found \(iterations)", at: group.location(of: "init.iterations"))
        }
        let quantiser = settings.quantiser ?? QuantiserSettings()
        let (bits, size, kind) = quantiser.resolved
        if let written = quantiser.bits, written != 4, written != 8 {
            diagnostics.error("'init.quantiser.bits' must be 4 or 8, found \(written)", at: group.location(of: "init.quantiser.bits"))
        } else if kind == .nf4, bits != 4 {
            diagnostics.error("quantiser kind 'nf4' has 16 levels, so 4 bits, not \(bits) (use kind: symmetric for 8 bits)",
                              at: group.location(of: quantiser.kind == nil ? "init.quantiser.bits" : "init.quantiser.kind"))
        }
        let at = group.location(of: quantiser.group == nil ? "init.method" : "init.quantiser.group")
        if size < 1 {
            diagnostics.error("'init.quantiser.group' must be a positive integer, found \(size)", at: at)
        } else if let module = modules.first(where: { $0.inFeatures % size != 0 }) {
            diagnostics.error("quantiser group \(size) does not divide module '\(module.name)''s in features \(module.inFeatures) "
                              + "(the quantiser's groups run along in; choose a divisor of every module's in)", at: at)
        }
    }

    /// `tolerance` (tt-svd: the error bound ε; cp-als: the fit-change stopping
    /// rule), `sweeps` (hooi), `iterations` (cp-als) and `residual` (the tensor
    /// methods): each only where its method reads it, and in range.
    private static func checkTensorSettings(_ group: AdapterGroup, _ diagnostics: inout DiagnosticCollector) {
        let settings = group.initialization
        let method = settings.method
        if let tolerance = settings.tolerance {
            let at = group.location(of: "init.tolerance")
            if ![.ttSVD, .cpALS].contains(method) {
                diagnostics.error("'init.tolerance' applies only to init methods 'tt-svd' and 'cp-als', not '\(method.rawValue)'", at: at)
            } else if !(tolerance > 0 && tolerance < 1) {
                diagnostics.error("'init.tolerance' must be between 0 and 1 (exclusive), found \(tolerance)", at: at)
            }
        }
        if let sweeps = settings.sweeps {
            let at = group.location(of: "init.sweeps")
            if method != .hooi {
                diagnostics.error("'init.sweeps' applies only to init method 'hooi', not '\(method.rawValue)'", at: at)
            } else if !(1...1000).contains(sweeps) {
                diagnostics.error("'init.sweeps' must be between 1 and 1000, found \(sweeps)", at: at)
            }
        }
        if method == .cpALS, let iterations = settings.iterations, !(1...100_000).contains(iterations) {
            diagnostics.error("'init.iterations' must be between 1 and 100000, found \(iterations)", at: group.location(of: "init.iterations"))
        }
        if settings.residual != nil, !tensorMethods.contains(method) {
            diagnostics.error("'init.residual' applies only to the tensor init methods ("
                              + tensorMethods.map(\.rawValue).joined(separator: ", ") + "), not '\(method.rawValue)'",
                              at: group.location(of: "init.residual"))
        }
    }

    /// pissa/milora take r singular triplets of each W: r ≤ min(out, in) per pair.
    private static func checkTripletsExist(_ group: AdapterGroup, modules: [ModelModule],
                                           _ diagnostics: inout DiagnosticCollector) {
        let method = group.initialization.method.rawValue
        if case .uniform(let r)? = group.rank,
           let module = modules.first(where: { r > min($0.outFeatures, $0.inFeatures) }) {
            diagnostics.error("init method '\(method)' takes \(r) singular triplets, but module '\(module.name)' "
                              + "[\(module.outFeatures), \(module.inFeatures)] has only \(min(module.outFeatures, module.inFeatures))",
                              at: group.location(of: "rank"))
        }
        for override in group.overrides {
            guard let r = override.rank, let module = modules.first(where: { $0.name == override.module }),
                  r > min(module.outFeatures, module.inFeatures) else { continue }
            diagnostics.error("init method '\(method)' takes \(r) singular triplets for \(override.layer).\(override.module), "
                              + "but its W has only \(min(module.outFeatures, module.inFeatures))",
                              at: group.location(of: "overrides.\(override.layer).\(override.module).rank"))
        }
    }
}
