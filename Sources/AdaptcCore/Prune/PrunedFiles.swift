import AdaptRuntime

/// The contents of the four files `adaptc prune` writes, all computed before
/// anything is written: the edited spec (re-checked against the decisions), its
/// weights in the adaptc layout with the new spec's hash, and the report.
public struct PrunedFiles {
    public var spec: String
    public var weights: [UInt8]
    public var reportJSON: String
    public var reportSVG: String
    /// The stdout table.
    public var table: [String]

    /// `prunedSpecPath`: where the spec will be written (diagnostics name it).
    public static func make(source: String, checked: CheckedSpec, plan: Plan, result: PruneResult, specPath: String,
                            prunedSpecPath: String) throws -> PrunedFiles {
        let text = PrunedSpecText.edit(source: source, checked: checked, result: result)
        let (newChecked, newPlan) = try recheck(text, path: prunedSpecPath, result: result)
        var writer = SafetensorsWriter(metadata: AdapterFiles.metadata(newChecked))
        for tensor in newPlan.parameters {
            guard let values = result.weights[tensor.key], values.count == tensor.count else {
                throw UserError("internal: the pruned spec's tensor \(tensor.key) \(tensor.shape) has no matching pruned weights")
            }
            writer.add(tensor.key, floats: values, shape: tensor.shape)
        }
        let names = checked.groups.map(\.name)
        let report = PruneReport(specPath: specPath, result: result,
                                 parametersBefore: parameters(plan, groups: names, result: result),
                                 parametersAfter: parameters(newPlan, groups: names, result: result))
        return PrunedFiles(spec: text, weights: try writer.encoded(), reportJSON: try report.json(),
                           reportSVG: PruneChart.svg(result), table: report.table)
    }

    /// Parses, checks and plans the edited text, and confirms it says what was
    /// decided (layers, ranks, shared groups) — a layout the line editor cannot
    /// follow is an error here, never a spec that means something else.
    static func recheck(_ text: String, path: String, result: PruneResult) throws -> (CheckedSpec, Plan) {
        let failure = "could not edit the spec's text in place (are its adapters written as a block list, `- name: …`?)"
        let checked: CheckedSpec
        do { checked = try SpecLoader.check(source: text, path: path) } catch { throw UserError("\(path): \(failure)") }
        let (plan, _) = Planner.plan(checked)
        guard let plan else { throw UserError("\(path): \(failure)") }
        for g in result.groups where g.pruned {
            guard let group = checked.groups.first(where: { $0.name == g.name }), group.layers == g.keptLayers else {
                throw UserError("\(path): \(failure)")
            }
            if !g.bonds.isEmpty {
                guard case .tensorTrain(let bonds) = group.ranks, bonds == g.bonds.map(\.rankAfter) else { throw UserError("\(path): \(failure)") }
            }
            if let ranks = g.expectedRanks, group.ranks != ranks { throw UserError("\(path): \(failure)") }
            for p in g.pairs {
                if let r = p.rankAfter, group.rank(layer: p.pair.layer, module: p.pair.module) != r { throw UserError("\(path): \(failure)") }
            }
            if let name = g.sharedGroupName {
                guard let shared = checked.groups.first(where: { $0.name == name }), shared.group.shared,
                      shared.layers == g.droppedLayers else { throw UserError("\(path): \(failure)") }
            }
        }
        return (checked, plan)
    }

    /// Stored parameters by group; a new `GROUP_shared` counts with its source group.
    static func parameters(_ plan: Plan, groups: [String], result: PruneResult) -> [String: Int] {
        var counts: [String: Int] = [:]
        for name in groups {
            let shared = result.groups.first { $0.name == name }?.sharedGroupName
            let owners = [name] + (shared.map { [$0] } ?? [])
            counts[name] = plan.parameters.filter { tensor in tensor.name.map { owners.contains($0.group) } ?? false }
                .reduce(0) { $0 + $1.count }
        }
        return counts
    }
}
