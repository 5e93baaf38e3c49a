import AdaptRuntime
import Foundation

/// Reads and checks `model.safetensors.index.json` (Hugging Face's sharded
/// layout) against the shards it names. Hostile or inconsistent indexes — a
/// missing shard, a tensor named twice, a shard that is not safetensors, a
/// shard name that leaves the folder — are one-line errors naming the file.
enum ShardIndex {
    static func open(folder: String) throws -> BaseCheckpoint {
        let indexPath = (folder as NSString).appendingPathComponent(BaseCheckpoint.indexName)
        let data: [UInt8]
        do throws(SmallFile.Failure) {
            data = try SmallFile.read(indexPath, limit: 100_000_000)
        } catch .unreadable(let reason) {
            throw UserError("\(folder): a folder base needs \(BaseCheckpoint.indexName) (Hugging Face's sharded layout): \(reason)")
        } catch .tooLarge(let bytes) {
            throw UserError("\(indexPath): \(bytes) bytes or more; an index is at most 100 MB")
        }
        guard let text = String(data: Data(data), encoding: .utf8) else { throw UserError("\(indexPath): not valid UTF-8") }
        let json: HeaderJSON
        do throws(HeaderJSONParser.SyntaxError) {
            json = try HeaderJSONParser.parse(text: text)
        } catch {
            throw UserError("\(indexPath): not valid JSON: \(error.detail) at byte \(error.offset)")
        }
        guard case .object(let members) = json else { throw UserError("\(indexPath): not a JSON object") }
        guard let weightMap = members.first(where: { $0.key == "weight_map" })?.value, case .object(let entries) = weightMap else {
            throw UserError("\(indexPath): no \"weight_map\" object (tensor key → shard file)")
        }

        var shardNames: [String] = []
        var shardOfTensor: [String: Int] = [:]
        for (tensor, value) in entries {
            guard case .string(let name) = value else {
                throw UserError("\(indexPath): tensor \"\(tensor)\": the shard must be a file name, not \(value.summary)")
            }
            guard !name.isEmpty, !name.contains("/"), name != ".", name != "..", name != BaseCheckpoint.indexName else {
                throw UserError("\(indexPath): tensor \"\(tensor)\": shard \"\(name)\" must be a file name inside the folder")
            }
            let shard: Int
            if let known = shardNames.firstIndex(of: name) { shard = known } else {
                shardNames.append(name)
                shard = shardNames.count - 1
            }
            guard shardOfTensor.updateValue(shard, forKey: tensor) == nil else {
                throw UserError("\(indexPath): tensor \"\(tensor)\" appears twice in weight_map")
            }
        }
        guard !shardNames.isEmpty else { throw UserError("\(indexPath): weight_map is empty") }

        // Shards in name order: deterministic, and the order Hub shards are numbered in.
        let order = shardNames.indices.sorted { shardNames[$0] < shardNames[$1] }
        var renumber = [Int](repeating: 0, count: order.count)
        for (new, old) in order.enumerated() { renumber[old] = new }
        var shards: [BaseCheckpoint.Shard] = []
        for old in order {
            let name = shardNames[old]
            let path = (folder as NSString).appendingPathComponent(name)
            guard FileManager.default.fileExists(atPath: path) else {
                let tensor = entries.first { if case .string(name) = $0.value { true } else { false } }!.key
                throw UserError("\(indexPath): shard \"\(name)\" (of tensor \"\(tensor)\") does not exist in \(folder)")
            }
            shards.append(BaseCheckpoint.Shard(name: name, file: try SafetensorsFile.read(path: path)))
        }
        shardOfTensor = shardOfTensor.mapValues { renumber[$0] }
        // Each shard holds exactly the tensors the index sends to it.
        for (number, shard) in shards.enumerated() {
            for entry in shard.file.tensors where shardOfTensor[entry.name] != number {
                if let other = shardOfTensor[entry.name] {
                    throw UserError("\(shard.file.path): tensor \"\(entry.name)\" is here, but \(BaseCheckpoint.indexName) places it in \(shards[other].name)")
                }
                throw UserError("\(shard.file.path): tensor \"\(entry.name)\" is not in \(BaseCheckpoint.indexName)")
            }
        }
        for (tensor, number) in shardOfTensor.sorted(by: { $0.key < $1.key }) where shards[number].file.entry(tensor) == nil {
            throw UserError("\(shards[number].file.path): no tensor \"\(tensor)\", which \(BaseCheckpoint.indexName) places there")
        }
        return BaseCheckpoint(path: folder, shards: shards, index: data, shardOfTensor: shardOfTensor)
    }
}
