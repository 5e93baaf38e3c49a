import AdaptRuntime
import Foundation

/// Plan stage: turns a checked spec into the Plan IR. Each structure has its own
/// planner; the parameter buffer is laid out group after group in spec order.
public enum Planner {
    /// Bytes of prepared state a group may need: ADAPTC_MEMORY_LIMIT, else half the physical memory.
    public static var memoryLimit: Int {
        if let text = ProcessInfo.processInfo.environment["ADAPTC_MEMORY_LIMIT"], let value = Int(text), value > 0 { return value }
        return Int(ProcessInfo.processInfo.physicalMemory / 2)
    }

    public static func plan(_ checked: CheckedSpec) -> (Plan?, [Diagnostic]) {
        let memoryLimit = Self.memoryLimit
        var diagnostics = DiagnosticCollector()
        // A task mode is indexed per row (DESIGN §2 "Tasks"): lora groups plan it
        // (`TensorView.taskStride`, rows routed by `TaskRouting`); tensor
        // networks and DoRA do not yet, so such a spec checks but does not plan.
        for group in checked.groups where group.group.tasks != nil && (group.structure != .lora || group.group.dora) {
            let what = group.group.dora ? "a dora group with tasks" : "a \(group.structure.rawValue) group with tasks"
            diagnostics.error("not supported yet: group '\(group.name)' is \(what), and the planner cannot yet route "
                              + "its token rows by task ('adaptc check' accepts the spec)", at: group.group.location(of: "tasks"))
        }
        if diagnostics.hasErrors { return (nil, diagnostics.sorted) }
        var layout = ParameterLayout()
        var groups: [GroupPlan] = []
        var workspace = Extent(0)
        var prepared = 0
        // Paths are chosen for the spec's token count (codegen.tokens), 64 rows when dynamic:
        // compile output must not depend on command-line flags.
        let model: CostModel
        switch checked.spec.codegen.tokens {
        case .dynamic: model = CostModel(tokens: 64)
        case .fixed(let n): model = CostModel(tokens: n)
        }
        var ownState: [Int] = []  // floats of prepared state (with gradients) per group
        for group in checked.groups {
            let before = prepared
            switch group.structure {
            case .lora:
                let planned = LoRAPlanner.plan(group, layout: &layout, inputSets: checked.spec.model.inputSets, model: model)
                groups.append(planned.group)
                workspace = .atLeast(workspace, planned.workspace)
            case .tensorTrain, .cp, .tucker:
                let planned = TensorPlanner.plan(group, layout: &layout, prepared: &prepared,
                                                 sharedInput: InputSets.shareInput(group, in: checked.spec), model: model)
                groups.append(planned.group)
                workspace = .atLeast(workspace, planned.workspace)
            }
            ownState.append(prepared - before)
        }
        // Panel copies go after every group's own state, so the prepared state
        // with gradients is one prefix: preparedGradients holds that alone, and
        // finishBackward clears no more than it.
        let preparedGradientCount = prepared
        for (i, group) in checked.groups.enumerated() {
            let before = prepared
            PanelPacking.apply(to: &groups[i], prepared: &prepared)
            let bytes = 4 * (2 * ownState[i] + prepared - before)  // prepared state, its gradients, the panel copies
            if ownState[i] > 0 && bytes > memoryLimit {
                diagnostics.error("group '\(group.name)' needs \(ByteCount.text(bytes)) of prepared state and gradients, "
                                  + "above the limit of \(ByteCount.text(memoryLimit)) (half the machine's memory by default; "
                                  + "set ADAPTC_MEMORY_LIMIT in bytes to change it); lower its ranks or choose another order",
                                  at: group.group.location(of: "structure"))
            }
        }
        if diagnostics.hasErrors { return (nil, diagnostics.sorted) }
        FrozenGradients.prune(&groups, parameters: layout.tensors)
        var plan = Plan(specName: checked.spec.name, parameters: layout.tensors, groups: groups, workspace: workspace,
                        preparedCount: prepared, preparedGradientCount: preparedGradientCount)
        if checked.groups.contains(where: { !$0.tasks.isEmpty }) { plan.modelTasks = checked.spec.model.tasks }
        let problems = PlanVerifier.verify(plan)
        precondition(problems.isEmpty, "internal error: invalid plan:\n" + problems.joined(separator: "\n"))
        return (plan, diagnostics.sorted)
    }
}

/// Hands out consecutive offsets in the parameter buffer.
struct ParameterLayout {
    private(set) var tensors: [ParameterTensor] = []
    private(set) var count = 0

    mutating func add(_ name: TensorKey, modes: [String?], shape: [Int], trainable: Bool = true) -> ParameterTensor {
        let tensor = ParameterTensor(name, modes: modes, shape: shape, offset: count, trainable: trainable)
        tensors.append(tensor)
        count += tensor.count
        return tensor
    }
}
