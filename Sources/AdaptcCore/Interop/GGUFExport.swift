import AdaptRuntime
import Foundation

/// `adaptc export-gguf`: a llama.cpp LoRA adapter (DESIGN §5), the file
/// llama.cpp's own `convert_lora_to_gguf.py` writes for the same PEFT adapter:
/// per pair `blk.L.NAME.weight.lora_a` (A, `[r, in]`, ggml `ne` `[in, r]`) and
/// `…lora_b` (B, `[out, r]`, `ne` `[r, out]`), llama's q/k rows of B permuted
/// by head as its `LlamaModel.permute` does. llama.cpp scales every pair by
/// `adapter.lora.alpha / r` (r from the tensor), so one alpha is written (the
/// most common of the pairs' PEFT alphas) and a pair whose scale differs
/// (rsLoRA, alpha overrides, groups of another alpha) has the ratio folded into B.
public enum GGUFExport {
    public enum TensorType: String, CaseIterable, Sendable {
        case f32, f16

        var ggml: GGMLType { self == .f32 ? .f32 : .f16 }
        var dtype: DType { self == .f32 ? .f32 : .f16 }
    }

    /// `--heads H[:KV]`: query heads and key/value heads (KV defaults to H).
    public struct Heads: Equatable, Sendable {
        public var query: Int
        public var keyValue: Int

        public init(query: Int, keyValue: Int) {
            self.query = query
            self.keyValue = keyValue
        }

        public init(parsing text: String) throws {
            let parts = text.split(separator: ":", omittingEmptySubsequences: false).map { Int($0) }
            guard (1...2).contains(parts.count), let query = parts[0], query > 0,
                  let keyValue = parts.count == 2 ? parts[1] : query, keyValue > 0 else {
                throw UserError("--heads \"\(text)\": expected H or H:KV, positive integers (query heads, key/value heads)")
            }
            self.init(query: query, keyValue: keyValue)
        }
    }

    public struct Result {
        public var writer: GGUFWriter
        public var pairs: Int
        /// Pairs whose scale was folded into B.
        public var folded: Int
        public var alpha: Double
    }

    struct Pair {
        var layer: Int
        var tensor: String
        var rank: Int
        var inFeatures: Int
        var outFeatures: Int
        var scale: Double
        /// PEFT's lora_alpha for this pair: the scale times r (√r with rsLoRA).
        var alpha: Double
        var a: [Float]
        var b: [Float]
    }

    public static func build(specPath: String, adapterPath: String, architecture name: String, heads: Heads?,
                             type: TensorType = .f32) throws -> Result {
        guard let architecture = GGUFArchitecture.named(name) else {
            throw UserError("--arch \"\(name)\": export-gguf knows \(GGUFArchitecture.known.map(\.name).joined(separator: ", "))")
        }
        let (checked, plan) = try SpecLoader.loadPlanned(path: specPath)
        for group in checked.groups where group.group.dora {
            throw UserError("\(specPath): group '\(group.name)' is DoRA; llama.cpp's LoRA adapters have no magnitude vector, so export the merged weights (adaptc merge --base) instead")
        }
        for group in checked.groups where !group.tasks.isEmpty {
            throw UserError("\(specPath): group '\(group.name)' has tasks; export-gguf writes one adapter without tasks (export one task with `adaptc export-peft --task NAME`)")
        }
        for group in checked.groups where group.structure.perPairLoRA == nil {
            throw UserError("\(specPath): group '\(group.name)' is \(group.group.structure.rawValue); export-gguf writes per-pair LoRA groups only (llama.cpp's adapters have no shared cores)")
        }
        let template = checked.spec.model.weightsKey
        var unmapped: [String] = []
        for group in plan.groups {
            for pair in group.pairs where architecture.tensor(forModulePath: modulePath(pair, template: template)) == nil {
                let path = modulePath(pair, template: template)
                if !unmapped.contains(path) { unmapped.append(path) }
            }
        }
        guard unmapped.isEmpty else {
            throw UserError("\(specPath): module\(unmapped.count == 1 ? "" : "s") \(unmapped.map { "'\($0)'" }.joined(separator: ", ")) "
                            + "\(unmapped.count == 1 ? "has" : "have") no llama.cpp tensor in architecture \(architecture.name)")
        }
        let interpreter = try AdapterFiles.load(adapterPath, checked: checked, plan: plan, threads: 1)
        let parameters = interpreter.storage.parameters
        var pairs: [Pair] = []
        checked.forEachPerPairLoRA(plan: plan, parameters: parameters) { group, pair, a, b in
            let rslora = group.group.scaling == .rslora
            let tensor = architecture.tensor(forModulePath: modulePath(pair, template: template))!
            let alpha = pair.scale * (rslora ? Double(pair.rank).squareRoot() : Double(pair.rank))
            pairs.append(Pair(layer: pair.layer, tensor: tensor, rank: pair.rank, inFeatures: pair.inFeatures,
                              outFeatures: pair.outFeatures, scale: pair.scale, alpha: alpha, a: a, b: b))
        }
        pairs.sort { ($0.layer, $0.tensor) < ($1.layer, $1.tensor) }
        for (first, second) in zip(pairs, pairs.dropFirst()) where first.layer == second.layer && first.tensor == second.tensor {
            throw UserError("\(specPath): two modules of layer \(first.layer) map to llama.cpp's \(first.tensor)")
        }
        if architecture.permutesQueryKey {
            try permuteQueryKey(&pairs, heads: heads, architecture: architecture, specPath: specPath)
        }

        // PEFT alphas recomputed from scales differ in the last bits: counted rounded, as export-peft does.
        let rounded = pairs.map { abs($0.alpha - $0.alpha.rounded()) <= 1e-9 * abs($0.alpha) ? $0.alpha.rounded() : $0.alpha }
        let alpha = Float(PEFTExport.mostCommon(rounded.map { ($0 * 1e9).rounded() / 1e9 }))
        var folded = 0
        var writer = GGUFWriter()
        // gguf-py's order: the architecture (its writer's first key), the alignment llama.cpp reads, the rest.
        writer.add("general.architecture", .string(architecture.name))
        writer.add("general.alignment", .uint32(UInt32(writer.alignment)))
        writer.add("general.type", .string("adapter"))
        writer.add("general.name", .string(checked.spec.name))
        writer.add("adapter.type", .string("lora"))
        writer.add("adapter.lora.alpha", .float32(alpha))
        writer.add("general.quantization_version", .uint32(2))
        for var pair in pairs {
            // What llama.cpp applies: alpha / r, with alpha as stored (float32).
            let applied = Double(alpha) / Double(pair.rank)
            if abs(pair.scale - applied) > 1e-7 * abs(applied) {
                let ratio = pair.scale / applied
                pair.b = pair.b.map { Float(Double($0) * ratio) }
                folded += 1
            }
            let name = "blk.\(pair.layer).\(pair.tensor).weight"
            writer.add(tensor: name + ".lora_a", shape: [pair.rank, pair.inFeatures], type: type.ggml,
                       bytes: try narrowed(pair.a, type, name + ".lora_a"))
            writer.add(tensor: name + ".lora_b", shape: [pair.outFeatures, pair.rank], type: type.ggml,
                       bytes: try narrowed(pair.b, type, name + ".lora_b"))
        }
        return Result(writer: writer, pairs: pairs.count, folded: folded, alpha: Double(alpha))
    }

    /// The module's Hugging Face path below the layer index: from
    /// `model.weights.key` (`model.layers.{layer}.{module}.weight` gives
    /// `self_attn.q_proj` for module `self_attn.q_proj`; `…layers.{layer}.self_attn.{module}.weight`
    /// gives it for module `q_proj`), else the module's own name.
    static func modulePath(_ pair: PairPlan, template: String?) -> String {
        guard let template, template.hasSuffix(".weight") else { return pair.module }
        let halves = template.dropLast(".weight".count).components(separatedBy: "{layer}.")
        guard halves.count == 2, !halves[0].contains("{module}") else { return pair.module }
        return halves[1].replacingOccurrences(of: "{module}", with: pair.module)
    }

    /// llama's converter turns HF's rotate-half order of each head's q/k rows
    /// into ggml's interleaved one: row (h, t, j) of `[heads, 2, d/2]` moves to
    /// (h, j, t). On a LoRA pair only B's rows move (A reads the input).
    static func permuteQueryKey(_ pairs: inout [Pair], heads: Heads?, architecture: GGUFArchitecture, specPath: String) throws {
        let adapted = pairs.filter { $0.tensor == "attn_q" || $0.tensor == "attn_k" }
        guard let first = adapted.first else { return }
        guard let heads else {
            throw UserError("\(specPath): --arch \(architecture.name) needs --heads H[:KV]: q or k is adapted (\(first.tensor) of layer \(first.layer)), and llama.cpp's converter permutes their rows by head")
        }
        for index in pairs.indices where pairs[index].tensor == "attn_q" || pairs[index].tensor == "attn_k" {
            let count = pairs[index].tensor == "attn_q" ? heads.query : heads.keyValue
            let rows = pairs[index].outFeatures, rank = pairs[index].rank
            guard rows % (2 * count) == 0 else {
                throw UserError("\(specPath): --heads \(heads.query):\(heads.keyValue): \(pairs[index].tensor) of layer \(pairs[index].layer) has \(rows) rows, not a multiple of 2 × \(count) heads")
            }
            let half = rows / count / 2
            let b = pairs[index].b
            var permuted = b
            for h in 0..<count {
                for t in 0..<2 {
                    for j in 0..<half {
                        let from = (h * 2 + t) * half + j, to = (h * half + j) * 2 + t
                        permuted[(to * rank)..<((to + 1) * rank)] = b[(from * rank)..<((from + 1) * rank)]
                    }
                }
            }
            pairs[index].b = permuted
        }
    }

    /// The values in the file's type; F16 cannot hold magnitudes above 65504.
    static func narrowed(_ values: [Float], _ type: TensorType, _ name: String) throws -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: values.count * type.ggml.itemSize)
        let bad = values.withUnsafeBufferPointer { source in
            bytes.withUnsafeMutableBytes { FloatNarrowing.narrow(source, as: type.dtype, into: $0) }
        }
        if let bad {
            throw UserError("\(name): value \(values[bad]) at index \(bad) does not fit in \(type.rawValue.uppercased()); export with --dtype f32")
        }
        return bytes
    }
}
