import AdaptRuntime

/// Several contractions that add into one workspace value (the VJP of a value
/// several steps read, e.g. `dt[n, ρ] += dy_m·B_m` for every module of a fused
/// layer) must run one after another: each reads and writes the sum. Here all
/// but the first write a partial of their own instead, so they can share a
/// stage, and copies add the partials into the sum afterwards, in a fixed
/// order (so the result does not depend on how many threads ran them).
enum AccumulationSplit {
    /// Splits each chain of at least three contributions to one workspace view,
    /// when nothing reads that view between the chain's first and last member
    /// and no member reads it. Other contractions keep their order.
    static func split(_ contractions: [Contraction], place: (String, [String], [Extent]) -> TensorView) -> [Contraction] {
        var members: [TensorView: [Int]] = [:]
        for (i, c) in contractions.enumerated() where c.output.storage == .workspace {
            members[c.output, default: []].append(i)
        }
        var partialOf: [Int: TensorView] = [:]
        var sumsAfter: [Int: [Contraction]] = [:]
        // In program order, not the dictionary's: `place` lays partials out in
        // the order it is called, so a hash-seeded order would move workspace
        // offsets from one process to the next.
        let chains = members.filter { $0.value.count >= 3 }.sorted { $0.value[0] < $1.value[0] }
        for (sum, indices) in chains {
            let first = indices[0], last = indices[indices.count - 1]
            let reads = { (c: Contraction) in ([c.a] + (c.b.map { [$0] } ?? [])).contains { $0.mayOverlap(sum) } }
            guard indices.dropFirst().allSatisfy({ contractions[$0].accumulate }),
                  !indices.contains(where: { reads(contractions[$0]) }),
                  !(first...last).contains(where: { !indices.contains($0) && (reads(contractions[$0]) || contractions[$0].output.mayOverlap(sum)) })
            else { continue }
            for (k, i) in indices.enumerated().dropFirst() {
                let partial = place("\(sum.name).part\(k)", sum.modes, sum.extents)
                partialOf[i] = partial
                sumsAfter[last, default: []].append(Contraction(sum, partial, nil, accumulate: true))
            }
        }
        guard !partialOf.isEmpty else { return contractions }
        var result: [Contraction] = []
        defer { PlanVerifier.assertValid(result, after: "AccumulationSplit") }
        for (i, c) in contractions.enumerated() {
            var c = c
            if let partial = partialOf[i] {
                c.output = partial
                c.accumulate = false
            }
            result.append(c)
            result += sumsAfter[i] ?? []
        }
        return result
    }
}
