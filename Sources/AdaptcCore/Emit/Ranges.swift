/// Runs of consecutive integers, as the generated code's case patterns and
/// layer lists and `adaptc plan`'s report write them.
extension Array where Element == Int {
    /// `[0, 1, 2, 5, 6, 9]` → `[0...2, 5...6, 9...9]`, in the order given.
    var consecutiveRuns: [ClosedRange<Int>] {
        var runs: [ClosedRange<Int>] = []
        for v in self {
            if let last = runs.last, v == last.upperBound + 1 {
                runs[runs.count - 1] = last.lowerBound...v
            } else {
                runs.append(v...v)
            }
        }
        return runs
    }
}

/// Indices as Swift case patterns: runs as closed ranges (`0...95, 100`).
func caseRanges(_ indices: [Int]) -> String {
    indices.consecutiveRuns.map { $0.count == 1 ? "\($0.lowerBound)" : "\($0.lowerBound)...\($0.upperBound)" }
        .joined(separator: ", ")
}

/// Equal neighbours said once with their count: `["a", "a", "b"]` → `["a (×2)", "b"]`.
func runs(_ items: [String]) -> [String] {
    var result: [(item: String, count: Int)] = []
    for item in items {
        if result.last?.item == item { result[result.count - 1].count += 1 } else { result.append((item, 1)) }
    }
    return result.map { $0.count == 1 ? $0.item : "\($0.item) (×\($0.count))" }
}
