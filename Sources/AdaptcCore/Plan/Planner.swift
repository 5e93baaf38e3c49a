import AdaptRuntime

/// Plan stage: turns a checked spec into the Plan IR. Each structure has its own
/// planner; the parameter buffer is laid out group after group in spec order.
public enum Planner {
    public static func plan(_ checked: CheckedSpec) -> (Plan?, [Diagnostic]) {
        var diagnostics = DiagnosticCollector()
        var layout = ParameterLayout()
        var groups: [GroupPlan] = []
        var workspace = Extent(0)
        // Paths are chosen for the spec's token count (codegen.tokens), 64 rows when dynamic:
        // compile output must not depend on command-line flags.
        let model: CostModel
        switch checked.spec.codegen.tokens {
        case .dynamic: model = CostModel(tokens: 64)
        case .fixed(let n): model = CostModel(tokens: n)
        }
        for group in checked.groups {
            switch group.structure {
            case .lora:
                let planned = LoRAPlanner.plan(group, layout: &layout, model: model)
                groups.append(planned.group)
                workspace = .atLeast(workspace, planned.workspace)
            case .tensorTrain, .cp, .tucker:
                diagnostics.error(
                    "structure '\(group.structure.rawValue)' of group '\(group.name)' is not supported yet by plan and compile (only 'lora' is); the spec itself is valid",
                    at: group.group.location(of: "structure"))
            }
        }
        if diagnostics.hasErrors { return (nil, diagnostics.sorted) }
        let plan = Plan(specName: checked.spec.name, parameters: layout.tensors, groups: groups, workspace: workspace)
        let problems = PlanVerifier.verify(plan)
        precondition(problems.isEmpty, "internal error: invalid plan:\n" + problems.joined(separator: "\n"))
        return (plan, diagnostics.sorted)
    }
}

/// Hands out consecutive offsets in the parameter buffer.
struct ParameterLayout {
    private(set) var tensors: [ParameterTensor] = []
    private(set) var count = 0

    mutating func add(_ key: String, shape: [Int]) -> ParameterTensor {
        let tensor = ParameterTensor(key: key, shape: shape, offset: count)
        tensors.append(tensor)
        count += tensor.count
        return tensor
    }
}
