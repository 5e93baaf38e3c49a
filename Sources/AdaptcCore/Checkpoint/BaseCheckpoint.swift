import AdaptRuntime
import Foundation

/// A base checkpoint as `--base` names it (DESIGN §5): one `.safetensors` file,
/// or a folder in Hugging Face's sharded layout — `model.safetensors.index.json`
/// whose `weight_map` sends each tensor key to a shard file in the folder.
/// Every shard is opened (header checked, no tensor read) up front,
/// and the index must agree with the shards exactly, so a command fails before
/// it writes anything.
public struct BaseCheckpoint: Sendable {
    public struct Shard: Sendable {
        /// The file name inside the folder (the whole path for a one-file base).
        public let name: String
        public let file: SafetensorsFile
    }

    public let path: String
    public let shards: [Shard]
    /// The index's bytes as read, for a sharded base; written back unchanged.
    public let index: [UInt8]?
    private let shardOfTensor: [String: Int]

    public var isSharded: Bool { index != nil }
    public static let indexName = "model.safetensors.index.json"

    public static func open(_ path: String) throws -> BaseCheckpoint {
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isFolder) else {
            throw UserError("\(path): no such file or folder")
        }
        guard isFolder.boolValue else {
            let file = try SafetensorsFile.read(path: path)
            return BaseCheckpoint(path: path, shards: [Shard(name: path, file: file)], index: nil,
                                  shardOfTensor: Dictionary(uniqueKeysWithValues: file.tensors.map { ($0.name, 0) }))
        }
        return try ShardIndex.open(folder: path)
    }

    init(path: String, shards: [Shard], index: [UInt8]?, shardOfTensor: [String: Int]) {
        self.path = path
        self.shards = shards
        self.index = index
        self.shardOfTensor = shardOfTensor
    }

    public var tensorCount: Int { shardOfTensor.count }

    /// The shard holding `key` and its entry.
    public func locate(_ key: String) -> (file: SafetensorsFile, entry: TensorEntry)? {
        guard let shard = shardOfTensor[key], let entry = shards[shard].file.entry(key) else { return nil }
        return (shards[shard].file, entry)
    }

    /// The base weight of one pair, widened to Float and `[out, in]` whatever
    /// the stored layout, after checking it exists, has the spec's shape and a
    /// computable dtype (errors name file and tensor).
    public func weight(_ key: String, for pair: PairPlan, template: WeightKeyTemplate) throws -> [Float] {
        guard let (file, entry) = locate(key) else {
            throw UserError("\(path): no tensor \"\(key)\" for pair \(pair.key) (model.weights.key is \"\(template.template)\")")
        }
        try Self.checkWeight(entry, file: file.path, pair: pair, template: template)
        let stored = try file.floats(key)
        guard template.isTransposed else { return stored }
        var weight = [Float](repeating: 0, count: stored.count)
        stored.withUnsafeBufferPointer { stored in
            weight.withUnsafeMutableBufferPointer { weight in
                MergeArithmetic.transpose(stored, rows: pair.inFeatures, columns: pair.outFeatures, into: weight)
            }
        }
        return weight
    }

    /// Shape and dtype of a pair's base weight against the spec and its layout.
    public static func checkWeight(_ entry: TensorEntry, file: String, pair: PairPlan, template: WeightKeyTemplate) throws {
        let expected = template.storedShape(pair)
        guard entry.shape == expected else {
            let layout = template.isTransposed ? " stored [in, out] (model.weights.layout in_out)" : ""
            throw UserError("\(file): tensor \"\(entry.name)\" has shape \(entry.shape), the spec says \(expected)\(layout)")
        }
        guard entry.dtype.isFloatingComputable else {
            throw UserError("\(file): tensor \"\(entry.name)\" is \(entry.dtype.rawValue); adaptc computes with F32, F16 or BF16")
        }
    }

    /// The checkpoint keys of a plan's pairs, checked against this base.
    public func targets(_ plan: Plan, template: WeightKeyTemplate) throws -> [String: PairPlan] {
        try targets(plan.pairs, template: template)
    }

    public func targets(_ pairs: [PairPlan], template: WeightKeyTemplate) throws -> [String: PairPlan] {
        var targets: [String: PairPlan] = [:]
        for pair in pairs {
            let key = template.key(pair)
            guard let (file, entry) = locate(key) else {
                throw UserError("\(path): no tensor \"\(key)\" for pair \(pair.key) (model.weights.key is \"\(template.template)\")")
            }
            try Self.checkWeight(entry, file: file.path, pair: pair, template: template)
            targets[key] = pair
        }
        return targets
    }
}
