@testable import AdaptcCore
import AdaptRuntime

/// ΔW[l, m] of a tensor-train, CP or Tucker group straight from DESIGN §2, in
/// float64, from the stored parameters — written independently of the planner.
struct TensorReference {
    let group: ResolvedGroup
    let plan: Plan

    /// Parameters by key, from a flat buffer in the plan's layout.
    func tensors(_ parameters: [Double]) -> [String: [Double]] {
        var result: [String: [Double]] = [:]
        for p in plan.parameters where p.key.hasPrefix(group.name + ".") {
            result[p.key] = Array(parameters[p.offset..<p.offset + p.count])
        }
        return result
    }

    /// The mode indices of D for pair (layer index li, module index mi), entry (o, i).
    func indices(li: Int, mi: Int, o: Int, i: Int) -> [Int] {
        let outSizes = group.modes.filter { $0.name.kind == .out }.sorted { $0.name < $1.name }
        let inSizes = group.modes.filter { $0.name.kind == .in }.sorted { $0.name < $1.name }
        func digits(_ value: Int, _ modes: [ResolvedMode]) -> [ModeName: Int] {
            var rest = value, result: [ModeName: Int] = [:]
            for m in modes.reversed() { result[m.name] = rest % m.size; rest /= m.size }
            return result
        }
        // Size-1 factors were dropped from modes: they contribute digit 0 and no size.
        let od = digits(o, outSizes), id = digits(i, inSizes)
        return group.modes.map { m in
            switch m.name.kind {
            case .layer: return li
            case .module: return mi
            case .out: return od[m.name]!
            case .in: return id[m.name]!
            case .task: preconditionFailure("the reference covers single-task groups")
            }
        }
    }

    func delta(_ parameters: [Double], li: Int, mi: Int) -> [Double] {
        let t = tensors(parameters)
        let module = group.modules[mi]
        let scale = group.scale(layer: group.layers[li], module: module.name)
        var result = [Double](repeating: 0, count: module.outFeatures * module.inFeatures)
        for o in 0..<module.outFeatures {
            for i in 0..<module.inFeatures {
                result[o * module.inFeatures + i] = scale * entry(t, indices(li: li, mi: mi, o: o, i: i))
            }
        }
        return result
    }

    private func entry(_ t: [String: [Double]], _ j: [Int]) -> Double {
        let modes = group.modes
        switch group.ranks {
        case .tensorTrain(let bonds):
            var v = [1.0]
            for k in modes.indices {
                let left = k == 0 ? 1 : bonds[k - 1], right = k == modes.count - 1 ? 1 : bonds[k]
                let core = t["\(group.name).core.\(k)"]!
                var next = [Double](repeating: 0, count: right)
                for a in 0..<left { for b in 0..<right { next[b] += v[a] * core[(a * modes[k].size + j[k]) * right + b] } }
                v = next
            }
            return v[0]
        case .cp(let r):
            var sum = 0.0
            for c in 0..<r {
                var product = 1.0
                for (k, m) in modes.enumerated() { product *= t["\(group.name).factor.\(m.name)"]![j[k] * r + c] }
                sum += product
            }
            return sum
        case .tucker(let ranks):
            let core = t["\(group.name).core"]!
            let sizes = zip(modes, ranks).map { $0.1 ?? $0.0.size }
            var sum = 0.0
            var index = [Int](repeating: 0, count: sizes.count)
            for flat in 0..<core.count {
                var rest = flat
                for k in sizes.indices.reversed() { index[k] = rest % sizes[k]; rest /= sizes[k] }
                var product = core[flat]
                for (k, m) in modes.enumerated() {
                    if let r = ranks[k] {
                        product *= t["\(group.name).factor.\(m.name)"]![j[k] * r + index[k]]
                    } else if index[k] != j[k] {
                        product = 0
                    }
                }
                sum += product
            }
            return sum
        case .lora:
            fatalError("lora has its own reference")
        }
    }
}
