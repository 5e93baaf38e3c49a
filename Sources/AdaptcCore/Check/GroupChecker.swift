/// Checks one adapter group and resolves it (ResolvedGroup). The rules live in
/// small files by topic; this file runs them in order, and stops before the
/// steps that would only repeat an earlier error (no modes without shapes, no
/// ranks without modes).
struct GroupChecker {
    let spec: AdapterSpec
    /// Whether model.layers is usable; if not, layer rules stay quiet (ModelRules said why).
    let modelIsValid: Bool

    struct Result {
        var group: ResolvedGroup?
        var coverage: GroupCoverage
    }

    func check(_ group: AdapterGroup, _ diagnostics: inout DiagnosticCollector) -> Result {
        let errorsBefore = errorCount(diagnostics)

        // The group's own keys.
        GroupRules.checkName(group, &diagnostics)
        let layers = GroupRules.checkLayers(group, modelLayers: spec.model.layers, modelIsValid: modelIsValid, &diagnostics)
        let modules = GroupRules.checkModules(group, model: spec.model, &diagnostics)
        GroupRules.checkStructureOptions(group, &diagnostics)
        GroupRules.checkAlpha(group.alpha, at: group.location(of: "alpha"), what: "alpha", &diagnostics)
        let tasks = TaskRules.resolveTasks(group, model: spec.model, &diagnostics)
        var normalised = group
        normalised.layers = layers

        // The stacked delta tensor of tensor-train, cp and tucker: its modes, then its size.
        var modes: ModeResolution.Modes?
        if group.structure.stacksModules, !layers.isEmpty, !modules.isEmpty,
           GroupRules.checkOneShape(group, modules: modules, &diagnostics), shapesAreValid(modules) {
            modes = ModeResolution.resolve(normalised, modules: modules, taskCount: tasks.map { max($0.count, 1) }, &diagnostics)
            if let modes { GroupRules.checkDeltaTensorFits(group, modes: modes.kept, &diagnostics) }
        }

        // Ranks: lora's stand alone, the tensor structures' depend on the modes.
        let ranks = group.structure.stacksModules
            ? modes.flatMap { RankResolution.resolve(group, modes: $0, &diagnostics) }
            : RankResolution.lora(group, modules: modules, &diagnostics)
        if group.structure == .lora {
            OverrideRules.check(normalised, modules: modules, &diagnostics)
        }
        InitRules.check(group, modules: modules, &diagnostics)
        TaskRules.checkTrain(group, modes: modes, hasTasks: tasks != nil, &diagnostics)

        let coverage = GroupCoverage(group: group, layers: layers, modules: modules)
        guard errorCount(diagnostics) == errorsBefore, let ranks else { return Result(group: nil, coverage: coverage) }
        var resolved = ResolvedGroup(group: normalised, modules: modules, modes: modes?.kept ?? [], ranks: ranks)
        resolved.tasks = tasks ?? []
        return Result(group: resolved, coverage: coverage)
    }

    private func errorCount(_ diagnostics: DiagnosticCollector) -> Int {
        diagnostics.diagnostics.lazy.filter { $0.severity == .error }.count
    }

    /// Bad shapes were reported by ModelRules; resolving modes over them would only echo that.
    private func shapesAreValid(_ modules: [ModelModule]) -> Bool {
        let sizes = 1...SizeLimits.maximumDimension
        return modules.allSatisfy { sizes.contains($0.outFeatures) && sizes.contains($0.inFeatures) }
    }
}
