import AdaptRuntime
import Foundation

/// The figures `adaptc plan` prints per group and in total: what the structure
/// costs per token and in memory, next to the dense ΔW it stands for.
public struct PlanReport {
    public struct Figures {
        public var parameters = 0
        /// Forward flops for `tokens` rows (all pairs, one pass).
        public var forwardFlops = 0
        /// Forward+backward flops for `tokens` rows.
        public var trainingFlops = 0
        /// Token-independent flops per weight update.
        public var prepareFlops = 0
        /// Bytes of stored parameters (float32).
        public var parameterBytes: Int { parameters * 4 }
        /// Largest intermediate of one call, in floats.
        public var peakIntermediate = 0
    }

    public var tokens: Int
    public var groups: [(name: String, structure: String, pairs: Int, path: [String], adapter: Figures, dense: Figures)]

    public init(plan: Plan, tokens: Int) {
        self.tokens = tokens
        groups = plan.groups.map { group in
            var adapter = Figures(), dense = Figures()
            // Every parameter key starts with its group's name (DESIGN §5 key layout).
            adapter.parameters = plan.parameters.filter { $0.key.hasPrefix(group.name + ".") }.map(\.count).reduce(0, +)
            adapter.peakIntermediate = plan.workspace.value(tokens: tokens)
            for pair in group.pairs {
                adapter.forwardFlops += pair.forward.flops.value(tokens: tokens)
                adapter.trainingFlops += pair.forward.flops.value(tokens: tokens) + pair.backward.flops.value(tokens: tokens)
                let weights = pair.outFeatures * pair.inFeatures
                dense.parameters += weights
                dense.forwardFlops += 2 * tokens * weights
                dense.trainingFlops += 6 * tokens * weights
            }
            adapter.prepareFlops = group.prepare.flops.value(tokens: 0)
            return (group.name, group.structure, group.pairs.count, group.path, adapter, dense)
        }
    }

    public var text: String {
        var lines: [String] = []
        for g in groups {
            lines.append("group \(g.name) (\(g.structure)): \(g.pairs) pairs")
            for step in g.path { lines.append("  path: \(step)") }
            lines.append("                         adapter          dense ΔW")
            lines.append(row("parameters", g.adapter.parameters, g.dense.parameters))
            lines.append(row("bytes (f32)", g.adapter.parameterBytes, g.dense.parameterBytes))
            lines.append(row("forward FLOPs, n=\(tokens)", g.adapter.forwardFlops, g.dense.forwardFlops))
            lines.append(row("per token", g.adapter.forwardFlops / max(tokens, 1), g.dense.forwardFlops / max(tokens, 1)))
            lines.append(row("fwd+bwd FLOPs", g.adapter.trainingFlops, g.dense.trainingFlops))
            lines.append(row("prepare FLOPs", g.adapter.prepareFlops, 0))
            lines.append(row("peak intermediate", g.adapter.peakIntermediate, 0))
        }
        let a = groups.map(\.adapter.parameters).reduce(0, +), d = groups.map(\.dense.parameters).reduce(0, +)
        lines.append("total: \(a) parameters (\(percent(a, d)) of the dense ΔW's \(d))")
        return lines.joined(separator: "\n")
    }

    private func row(_ label: String, _ a: Int, _ d: Int) -> String {
        let padded = label.padding(toLength: 22, withPad: " ", startingAt: 0)
        let left = String(a), right = String(d)
        return "  " + padded + String(repeating: " ", count: max(1, 16 - left.count)) + left
            + String(repeating: " ", count: max(1, 18 - right.count)) + right
    }

    private func percent(_ a: Int, _ b: Int) -> String {
        b == 0 ? "-" : String(format: "%.3f%%", 100 * Double(a) / Double(b))
    }

    /// One JSON object, keys sorted (deterministic).
    public var json: String {
        func figures(_ f: Figures) -> [String: Any] {
            ["parameters": f.parameters, "bytes": f.parameterBytes, "forward_flops": f.forwardFlops,
             "forward_flops_per_token": f.forwardFlops / max(tokens, 1), "training_flops": f.trainingFlops,
             "prepare_flops": f.prepareFlops, "peak_intermediate": f.peakIntermediate]
        }
        let object: [String: Any] = [
            "tokens": tokens,
            "groups": groups.map { g in
                ["name": g.name, "structure": g.structure, "pairs": g.pairs, "path": g.path,
                 "adapter": figures(g.adapter), "dense": figures(g.dense)] as [String: Any]
            },
        ]
        let data = try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
        return String(decoding: data, as: UTF8.self)
    }
}
