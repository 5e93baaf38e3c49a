/// Check stage: AdapterSpec → CheckedSpec (DESIGN §2 and §5).
///
/// Check enforces what values mean: versions, names, shapes, layers, which
/// group covers which pair, factors, orders, ranks, init methods and size limits.
/// It resolves each group (ResolvedGroup: modes in order with sizes, ranks
/// clipped or filled in) for Plan and Emit. It also guards specs built in code
/// (import-peft, prune), so it repeats no assumption Parse makes.
///
/// Errors point at the most precise place the spec records: a list element
/// (`layers[2]`), else the key of the offending value (`rank`), else the group.
public enum SpecChecker {
    /// The checked spec (nil when there is any error) and every diagnostic,
    /// warnings and notes included, sorted by location.
    public static func check(_ spec: AdapterSpec) -> (CheckedSpec?, [Diagnostic]) {
        var diagnostics = DiagnosticCollector()
        SpecRules.check(spec, &diagnostics)
        let modelIsValid = ModelRules.check(spec, &diagnostics)
        TaskRules.checkModelTasks(spec, &diagnostics)

        var resolved: [ResolvedGroup] = []
        var coverage: [GroupCoverage] = []
        let checker = GroupChecker(spec: spec, modelIsValid: modelIsValid)
        for group in spec.groups {
            let result = checker.check(group, &diagnostics)
            if let group = result.group { resolved.append(group) }
            coverage.append(result.coverage)
        }
        GroupRules.checkNamesAreUnique(spec.groups, &diagnostics)
        PairCoverage.check(coverage, &diagnostics)

        let sorted = diagnostics.sorted
        guard !diagnostics.hasErrors, resolved.count == spec.groups.count else { return (nil, sorted) }
        var checkedSpec = spec
        // The resolved groups hold the normalised groups (layers ascending).
        checkedSpec.groups = resolved.map(\.group)
        return (CheckedSpec(spec: checkedSpec, groups: resolved, diagnostics: sorted), sorted)
    }
}
