/// `init:` (DESIGN §3): the method must fit the structure, `svd` and its
/// parameters only go with SVD-based methods, and `recycle` needs `from` paths
/// relative to the spec's folder.
enum InitRules {
    /// Methods per structure. pissa, milora and olora split one pair's W, so they need
    /// a non-shared lora group; the tensor methods decompose the stacked weights.
    static func methods(for group: AdapterGroup) -> [InitMethod] {
        switch group.structure {
        case .lora: return group.shared ? [.zero, .gaussian, .recycle] : [.zero, .gaussian, .pissa, .milora, .olora, .recycle]
        case .tensorTrain: return [.zero, .gaussian, .ttSVD, .recycle]
        case .cp: return [.zero, .gaussian, .cpALS, .recycle]
        case .tucker: return [.zero, .gaussian, .hosvd, .recycle]
        }
    }

    /// The methods that run an SVD (cp-als starts from SVD factors; recycle
    /// decomposes the stacked ΔW of the adapters it reads).
    static let svdMethods: [InitMethod] = [.pissa, .milora, .ttSVD, .hosvd, .cpALS, .recycle]

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
        if [.pissa, .milora, .olora].contains(method), group.structure == .lora {
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
