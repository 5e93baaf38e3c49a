import AdaptRuntime
import Foundation

/// What `adaptc plan` prints per group and in total, as text or JSON: each
/// group's path, modes and ranks with its cost (`GroupCost`, computed in Plan:
/// this file only renders).
public struct PlanReport {
    public typealias Figures = GroupCost.Figures

    public struct Group {
        public var name: String
        public var structure: String
        public var layers: [Int]
        public var modules: [String]
        public var pairs: Int
        public var plan: GroupPlan
        public var adapter: Figures
        /// The LoRA whose per-token flops match the adapter's (rank ≥ 1).
        public var equalCostLoRA: Figures
        public var equalCostRank: Double
        public var dense: Figures
    }

    public var specName: String
    public var specHash: String
    public var tokens: Int
    public var groups: [Group]

    public init(checked: CheckedSpec, plan: Plan, tokens: Int) {
        self.tokens = tokens
        specName = checked.spec.name
        specHash = SpecHash.hash(checked)
        groups = plan.groups.map { group in
            let cost = GroupCost(group: group, parameters: plan.parameters, tokens: tokens)
            let covered = checked.groups.first { $0.name == group.name }
            return Group(name: group.name, structure: group.structure, layers: covered?.layers ?? [],
                         modules: covered?.modules.map(\.name) ?? [], pairs: group.pairs.count, plan: group,
                         adapter: cost.adapter, equalCostLoRA: cost.equalCostLoRA, equalCostRank: cost.equalCostRank, dense: cost.dense)
        }
    }

    public var text: String {
        var lines: [String] = []
        for g in groups {
            lines.append("group \(g.name) (\(g.structure)): \(g.pairs) pairs, layers \(caseRanges(g.layers)), modules \(g.modules.joined(separator: ", "))")
            if !g.plan.modeOrder.isEmpty {
                let modes = g.plan.modeOrder.map { "\($0)=\(g.plan.modes[$0] ?? 0)" }.joined(separator: " ")
                lines.append("  modes: \(modes); ranks \(g.plan.ranks.map(String.init).joined(separator: ", "))")
            }
            for step in g.plan.path { lines.append("  path: \(step)") }
            lines.append(String(format: "                         adapter  LoRA r≈%-9.1f  dense ΔW", g.equalCostRank))
            let rows: [(String, (Figures) -> Int)] = [
                ("parameters", { $0.parameters }), ("bytes (f32)", { $0.parameterBytes }),
                ("forward FLOPs, n=\(tokens)", { $0.forwardFlops }), ("per token", { $0.forwardFlops / max(self.tokens, 1) }),
                ("fwd+bwd FLOPs", { $0.trainingFlops }), ("prepare FLOPs", { $0.prepareFlops }),
                ("prepared (floats)", { $0.preparedFloats }), ("peak interm. (floats)", { $0.peakIntermediate }),
            ]
            for (label, value) in rows { lines.append(row(label, [value(g.adapter), value(g.equalCostLoRA), value(g.dense)])) }
        }
        let a = groups.map(\.adapter.parameters).reduce(0, +), d = groups.map(\.dense.parameters).reduce(0, +)
        lines.append("total: \(a) parameters (\(percent(a, d)) of the dense ΔW's \(d))")
        return lines.joined(separator: "\n")
    }

    private func row(_ label: String, _ values: [Int]) -> String {
        let padded = label.padding(toLength: 22, withPad: " ", startingAt: 0)
        var text = "  " + padded
        for (i, v) in values.enumerated() {
            let s = String(v), width = i == 0 ? 12 : 16
            text += String(repeating: " ", count: max(1, width - s.count)) + s
        }
        return text
    }

    private func percent(_ a: Int, _ b: Int) -> String {
        b == 0 ? "-" : String(format: "%.3f%%", 100 * Double(a) / Double(b))
    }

    /// One JSON object, keys sorted (deterministic): the spec's name and hash,
    /// totals, and per group its layers, modules, modes, ranks and path steps as data.
    public var json: String {
        func figures(_ f: Figures) -> [String: Any] {
            ["parameters": f.parameters, "bytes": f.parameterBytes, "forward_flops": f.forwardFlops,
             "forward_flops_per_token": f.forwardFlops / max(tokens, 1), "training_flops": f.trainingFlops,
             "prepare_flops": f.prepareFlops, "prepared_floats": f.preparedFloats, "peak_intermediate_floats": f.peakIntermediate]
        }
        let total = groups.reduce(into: Figures()) { sum, g in
            sum.parameters += g.adapter.parameters
            sum.forwardFlops += g.adapter.forwardFlops
            sum.trainingFlops += g.adapter.trainingFlops
            sum.prepareFlops += g.adapter.prepareFlops
            sum.preparedFloats += g.adapter.preparedFloats
            sum.peakIntermediate = max(sum.peakIntermediate, g.adapter.peakIntermediate)
        }
        let object: [String: Any] = [
            "spec": specName, "hash": specHash, "tokens": tokens, "total": figures(total),
            "groups": groups.map { g in
                [
                    "name": g.name, "structure": g.structure, "pairs": g.pairs, "layers": g.layers, "modules": g.modules,
                    "modes": g.plan.modeOrder.map { ["name": $0, "size": g.plan.modes[$0] ?? 0] },
                    "ranks": g.plan.ranks, "optimizer": g.plan.optimizer, "path": g.plan.path,
                    "steps": g.plan.steps.map { s in
                        ["phase": s.phase, "left": ["name": s.left, "modes": s.leftModes],
                         "right": ["name": s.right, "modes": s.rightModes],
                         "result": ["name": s.result, "modes": s.resultModes]] as [String: Any]
                    },
                    "adapter": figures(g.adapter), "dense": figures(g.dense),
                    "equal_cost_lora": figures(g.equalCostLoRA).merging(["rank": g.equalCostRank]) { $1 },
                ] as [String: Any]
            },
        ]
        let data = try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
        return String(decoding: data, as: UTF8.self)
    }
}
