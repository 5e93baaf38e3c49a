import AdaptRuntime

/// The base weights DoRA pairs need on the command line (`eval`, `materialize`
/// with `--base`, DESIGN §5): opened once, read pair by pair. Without `--base`
/// a spec with a DoRA group is refused up front, naming the group, before
/// anything is written.
struct DoRABaseWeights {
    private let base: BaseCheckpoint?
    private let template: WeightKeyTemplate?
    private let command: String
    private let specPath: String
    private let doraGroup: [String: String]  // pair key → group name

    init(_ checked: CheckedSpec, plan: Plan, basePath: String?, command: String) throws {
        self.command = command
        specPath = checked.spec.path
        var groups: [String: String] = [:]
        for group in plan.groups { for pair in group.pairs where pair.dora != nil { groups[pair.key] = group.name } }
        doraGroup = groups
        if let basePath, !groups.isEmpty {
            base = try BaseCheckpoint.open(basePath)
            template = try WeightKeyTemplate(checked, for: "DoRA's \(command)")
        } else {
            base = nil
            template = nil
        }
    }

    /// Throws when the pair is DoRA and there is no base.
    func require(_ pair: PairPlan) throws {
        guard let group = doraGroup[pair.key], base == nil else { return }
        throw UserError("\(specPath): group '\(group)' is DoRA, whose output depends on the base weight W (pair \(pair.key)); \(command) needs --base")
    }

    /// W `[out, in]` of a DoRA pair, nil for the others.
    func weight(_ pair: PairPlan) throws -> [Float]? {
        guard doraGroup[pair.key] != nil, let base, let template else { return nil }
        return try base.weight(template.key(pair), for: pair, template: template)
    }

    /// x·Wᵀ `[n, out]`, accumulated in float64 (eval is the reference path).
    static func product(_ x: UnsafeBufferPointer<Float>, _ w: UnsafeBufferPointer<Float>, rows n: Int, out: Int,
                        in inDim: Int) -> [Float] {
        var y = [Float](repeating: 0, count: n * out)
        for row in 0..<n {
            for o in 0..<out {
                var sum = 0.0
                for i in 0..<inDim { sum += Double(x[row * inDim + i]) * Double(w[o * inDim + i]) }
                y[row * out + o] = Float(sum)
            }
        }
        return y
    }
}
