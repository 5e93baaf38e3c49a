/// What one group covers, for the rule that a (layer, module) pair belongs to at
/// most one group (DESIGN §5): two adapters on one W would each claim ΔW.
struct GroupCoverage {
    var group: AdapterGroup
    /// Valid layers, ascending.
    var layers: [Int]
    /// Known modules in group order.
    var modules: [ModelModule]
}

enum PairCoverage {
    /// One error per (group, module) that repeats pairs of an earlier group, at
    /// the later group's module entry, naming the earlier group and the layers.
    static func check(_ groups: [GroupCoverage], _ diagnostics: inout DiagnosticCollector) {
        for (j, later) in groups.enumerated() {
            for earlier in groups[..<j] {
                for module in later.modules where earlier.modules.contains(where: { $0.name == module.name }) {
                    let shared = Set(earlier.layers).intersection(later.layers).sorted()
                    guard !shared.isEmpty else { continue }
                    let index = later.group.modules.firstIndex(of: module.name) ?? 0
                    let layers = shared.count == 1 ? "layer \(shared[0])" : "layers \(describe(shared))"
                    diagnostics.error("\(layers) of module '\(module.name)' \(shared.count == 1 ? "is" : "are") already "
                                      + "covered by group '\(earlier.group.name)'; a (layer, module) pair belongs to at most one group",
                                      at: later.group.location(of: "modules[\(index)]"))
                }
            }
        }
    }

    /// `0...11`, or `0, 3, 5`, shortened past eight entries.
    static func describe(_ layers: [Int]) -> String {
        if let first = layers.first, let last = layers.last, layers.count > 2, last - first == layers.count - 1 {
            return "\(first)...\(last)"
        }
        let shown = layers.prefix(8).map(String.init).joined(separator: ", ")
        return layers.count > 8 ? shown + ", … (\(layers.count) in all)" : shown
    }
}
