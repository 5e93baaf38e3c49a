import AdaptRuntime

/// Calibration rows for `adaptc prune` (DESIGN §4): a safetensors file keyed
/// `LAYER.MODULE` with rows `[n, in]` for every pair the pruner measures. Checked
/// in full before anything is computed: a missing pair, a wrong width, a key
/// the spec does not cover or a NaN is one error naming the tensor.
public struct CalibrationSet {
    /// Rows by pair key; only pairs of the groups pruned (every structure).
    public var rows: [String: (x: [Float], count: Int)]

    public static func load(_ path: String, checked: CheckedSpec) throws -> CalibrationSet {
        let file = try SafetensorsFile.read(path: path)
        let lora = checked.groups.filter(isPruned)
        var rows: [String: (x: [Float], count: Int)] = [:]
        for entry in file.tensors {
            guard let (layer, module) = OverrideParser.pairKey(entry.name) else {
                throw UserError("\(path): tensor \"\(entry.name)\": calibration keys are LAYER.MODULE, e.g. 3.query")
            }
            let pair = Pair(layer: layer, module: module)
            guard let group = checked.group(covering: pair), let shape = group.module(named: module) else {
                throw UserError("\(path): tensor \"\(entry.name)\": the spec has no adapter for layer \(layer) module \"\(module)\"")
            }
            guard isPruned(group) else { continue }
            guard entry.shape.count == 2, entry.shape[0] >= 1, entry.shape[1] == shape.inFeatures else {
                throw UserError("\(path): tensor \"\(entry.name)\" has shape \(entry.shape), expected [n, \(shape.inFeatures)] with n ≥ 1")
            }
            guard rows[pair.key] == nil else {
                throw UserError("\(path): tensor \"\(entry.name)\": a second tensor for pair \(pair.key)")
            }
            rows[pair.key] = (try file.floats(entry.name), entry.shape[0])
        }
        let missing = lora.flatMap(\.pairs).filter { rows[$0.key] == nil }
        if let first = missing.first {
            let more = missing.count > 1 ? " (and \(missing.count - 1) more pairs)" : ""
            throw UserError("\(path): no calibration rows for pair \(first.key)\(more); prune needs rows [n, in] keyed LAYER.MODULE for every pair of every group")
        }
        return CalibrationSet(rows: rows)
    }

    /// The groups `adaptc prune` measures: every structure (groups with tasks never plan, so never get here).
    static func isPruned(_ group: ResolvedGroup) -> Bool {
        [.lora, .tensorTrain, .tucker, .cp].contains(group.structure)
    }
}
