import AdaptRuntime

/// What `adaptc prune` asks of a structure (DESIGN §4), so the stage, the
/// pruned spec, the report and the chart name no structure: each structure's
/// pruner conforms in its own file (`LoRADropStage`, `TTRoundingStage`,
/// `TuckerRoundingStage`, `CPPruningStage`); a new one conforms in its own
/// file and adds its case to `Structure.pruner`.
protocol GroupPruner {
    /// Prunes one group on the calibration rows: its decisions, and its pruned
    /// tensors (with those of any `GROUP_shared` group made of its dropped
    /// layers, named apart from `taken`) into `weights` by key.
    static func run(_ group: ResolvedGroup, plan: Plan, adapter: PlanInterpreter, calibration: CalibrationSet,
                    settings: PruneSettings, taken: Set<String>, weights: inout [String: [Float]]) -> GroupPruning

    /// The pruned spec's new `rank:` or `ranks:` (first line without indent, the
    /// rest indented two more); nil when they stay as written.
    static func rankLines(_ group: ResolvedGroup, _ pruning: GroupPruning, _ settings: PruneSettings) -> [String]?

    /// The pruned spec's new `overrides:` (as `rankLines`); nil when they stay as written.
    static func overrideLines(_ group: ResolvedGroup, _ pruning: GroupPruning, _ settings: PruneSettings) -> [String]?

    /// True when the group's mode cuts are of one rank all its modes share (CP's
    /// components), so the report and chart say one rank, not one per mode.
    static var cutsOneSharedRank: Bool { get }
}

extension GroupPruner {
    static func rankLines(_ group: ResolvedGroup, _ pruning: GroupPruning, _ settings: PruneSettings) -> [String]? { nil }
    static func overrideLines(_ group: ResolvedGroup, _ pruning: GroupPruning, _ settings: PruneSettings) -> [String]? { nil }
    static var cutsOneSharedRank: Bool { false }
}

extension Structure {
    /// Who prunes a group of this structure.
    var pruner: GroupPruner.Type {
        switch self {
        case .lora: return LoRADropStage.self
        case .tensorTrain: return TTRoundingStage.self
        case .tucker: return TuckerRoundingStage.self
        case .cp: return CPPruningStage.self
        }
    }
}

/// The prune stage for a checked spec and its loaded adapter: every group by
/// its structure's pruner, the decisions and the pruned weights collected.
public enum PruneStage {
    public static func run(_ checked: CheckedSpec, plan: Plan, adapter: PlanInterpreter,
                           calibration: CalibrationSet, settings: PruneSettings) -> PruneResult {
        let taken = Set(checked.groups.map(\.name))
        var groups: [GroupPruning] = []
        var weights: [String: [Float]] = [:]
        for group in checked.groups {
            groups.append(group.structure.pruner.run(group, plan: plan, adapter: adapter, calibration: calibration,
                                                     settings: settings, taken: taken, weights: &weights))
        }
        return PruneResult(settings: settings, groups: groups, weights: weights)
    }

    /// A stored tensor's values as loaded.
    static func values(_ name: TensorKey, _ plan: Plan, _ adapter: PlanInterpreter) -> [Float] {
        guard let tensor = plan.parameter(name) else { preconditionFailure("the plan has no parameter \(name)") }
        return values(tensor, adapter)
    }

    static func values(_ tensor: ParameterTensor, _ adapter: PlanInterpreter) -> [Float] {
        tensor.values(in: adapter.storage.parameters)
    }
}
