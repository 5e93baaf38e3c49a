import AdaptRuntime
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// `merge-sharded` (DESIGN §8): `adaptc merge` of a LoRA on q/v/down of a
/// sharded BF16 checkpoint with LLaMA-7B shapes (hidden 4096, FFN 11008, one
/// shard per layer plus the embeddings), written here, against a durable copy
/// of the same files (copy, then fsync each, as an atomic writer must). The
/// real `adaptc` executable runs as a child process, so `peak_rss_mb` is its
/// own high-water mark (wait4's ru_maxrss). Layers: ADAPTC_BENCH_LAYERS
/// ("4,8" by default). Afterwards it checks that merged weights are within one
/// BF16 ulp of a float64 merge rounded to nearest even (every 16th row) and
/// that every untargeted tensor is carried byte for byte.
extension Bench {
    static func mergeSharded(threads: Int) throws {
        let layerCounts = (ProcessInfo.processInfo.environment["ADAPTC_BENCH_LAYERS"] ?? "4,8")
            .split(separator: ",").compactMap { Int($0) }
        let adaptc = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
            .deletingLastPathComponent().appendingPathComponent("adaptc").path
        guard FileManager.default.isExecutableFile(atPath: adaptc) else {
            throw BenchError("merge-sharded runs \(adaptc); build it: swift build -c release --product adaptc")
        }
        for layers in layerCounts {
            let root = FileManager.default.temporaryDirectory.appendingPathComponent("adaptc-merge-sharded-\(getpid())").path
            try? FileManager.default.removeItem(atPath: root)
            try FileManager.default.createDirectory(atPath: root + "/base", withIntermediateDirectories: true)
            // ADAPTC_BENCH_KEEP=1 leaves the files for a closer look (and says where).
            let keep = ProcessInfo.processInfo.environment["ADAPTC_BENCH_KEEP"] == "1"
            defer {
                if keep { FileHandle.standardError.write(Data("merge-sharded: files kept in \(root)\n".utf8)) }
                else { try? FileManager.default.removeItem(atPath: root) }
            }
            let shards = try writeLlamaCheckpoint(layers: layers, folder: root + "/base")
            try mergeSpec(layers: layers).write(toFile: root + "/spec.adapt.yaml", atomically: true, encoding: .utf8)
            let initRun = try spawn(adaptc, ["init", root + "/spec.adapt.yaml", "-o", root + "/zero.safetensors", "--seed", "1"])
            guard initRun.status == 0 else { throw BenchError("adaptc init failed") }
            try randomizeB(root + "/zero.safetensors", to: root + "/adapter.safetensors")

            var mergeSeconds: [Double] = [], copySeconds: [Double] = [], peak = 0
            for _ in 0..<3 {
                // The previous copy is deleted before the clock starts: the copy writes fresh files.
                try? FileManager.default.removeItem(atPath: root + "/copy")
                let start = DispatchTime.now().uptimeNanoseconds
                try durableCopy(shards.map { root + "/base/" + $0 }, to: root + "/copy")
                copySeconds.append(Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9)
                let run = try spawn(adaptc, ["merge", root + "/spec.adapt.yaml", "--adapter", root + "/adapter.safetensors",
                                             "--base", root + "/base", "-o", root + "/merged", "--threads", String(threads)])
                guard run.status == 0 else { throw BenchError("adaptc merge failed (status \(run.status))") }
                mergeSeconds.append(run.seconds)
                peak = max(peak, run.maxResidentBytes)
            }
            let (maxULP, carried) = try checkMerge(root: root, shards: shards)
            let merge = mergeSeconds.sorted()[1], copy = copySeconds.sorted()[1]
            let bytes = shards.reduce(0) { $0 + ((try? FileManager.default.attributesOfItem(atPath: root + "/base/" + $1)[.size] as? Int) ?? 0) }
            emit([("case", "merge-sharded"), ("variant", "durable-copy"), ("n", layers), ("impl", "adaptc"), ("threads", 1),
                  ("seconds", copy), ("flops", 0), ("bytes", bytes)])
            let flops: Int = 2 * 2 * 16 * layers * (2 * 4096 * 4096 + 4096 * 11008)
            var fields: [(String, Any)] = [("case", "merge-sharded"), ("variant", "merge"), ("n", layers), ("impl", "adaptc")]
            fields += [("threads", threads), ("seconds", merge), ("flops", flops), ("bytes", bytes)]
            fields += [("ratio_to_copy", merge / copy), ("peak_rss_mb", Double(peak) / 1e6), ("max_ulp", maxULP)]
            fields.append(("untargeted_byte_for_byte", carried ? "yes" : "NO"))
            emit(fields)
        }
    }

    struct BenchError: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    static let llamaModules: [(name: String, shape: [Int])] = [
        ("self_attn.q_proj", [4096, 4096]), ("self_attn.k_proj", [4096, 4096]), ("self_attn.v_proj", [4096, 4096]),
        ("self_attn.o_proj", [4096, 4096]), ("mlp.gate_proj", [11008, 4096]), ("mlp.up_proj", [11008, 4096]),
        ("mlp.down_proj", [4096, 11008]),
    ]

    static func mergeSpec(layers: Int) -> String {
        """
        adaptc: 1
        name: LlamaMerge
        model:
          layers: \(layers)
          modules: {self_attn.q_proj: [4096, 4096], self_attn.v_proj: [4096, 4096], mlp.down_proj: [4096, 11008]}
          weights: {key: "model.layers.{layer}.{module}.weight"}
        adapters:
          - name: lora
            structure: lora
            modules: [self_attn.q_proj, self_attn.v_proj, mlp.down_proj]
            rank: 16
            alpha: 32
        """
    }

    /// One shard per layer (the first also holds the embeddings), BF16 weights
    /// uniform in ±0.05, F32 norms; the index last. Streams, one tensor in memory.
    static func writeLlamaCheckpoint(layers: Int, folder: String) throws -> [String] {
        var state: UInt64 = 0x1234_5678
        func bf16Bytes(_ count: Int) -> [UInt8] {
            var bytes = [UInt8](repeating: 0, count: 2 * count)
            for i in 0..<count {
                state = state &* 6364136223846793005 &+ 1442695040888963407
                let value = (Float(state >> 40) / Float(1 << 24) * 2 - 1) * 0.05
                let bits = FloatNarrowing.bfloat16Bits(value)
                bytes[2 * i] = UInt8(bits & 0xFF)
                bytes[2 * i + 1] = UInt8(bits >> 8)
            }
            return bytes
        }
        var names: [String] = []
        var weightMap: [String: String] = [:]
        for layer in 0..<layers {
            let name = String(format: "model-%05d-of-%05d.safetensors", layer + 1, layers)
            names.append(name)
            var tensors: [(name: String, dtype: DType, shape: [Int])] = llamaModules.map {
                ("model.layers.\(layer).\($0.name).weight", .bf16, $0.shape)
            }
            tensors += [("model.layers.\(layer).input_layernorm.weight", .f32, [4096]),
                        ("model.layers.\(layer).post_attention_layernorm.weight", .f32, [4096])]
            if layer == 0 { tensors.append(("model.embed_tokens.weight", .bf16, [32000, 4096])) }
            let writer = try SafetensorsStreamWriter(path: folder + "/" + name, metadata: ["format": "pt"], tensors: tensors)
            while let next = writer.nextName {
                let tensor = tensors.first { $0.name == next }!
                let count = tensor.shape.reduce(1, *)
                try writer.append(next, bytes: tensor.dtype == .bf16 ? bf16Bytes(count) : FloatNarrowing.bytes([Float](repeating: 1, count: count), as: .f32))
                weightMap[next] = name
            }
            try writer.commit()
        }
        let index = try JSONSerialization.data(withJSONObject: ["metadata": [:] as [String: Any], "weight_map": weightMap],
                                               options: [.sortedKeys, .prettyPrinted])
        try AtomicFile.write(Array(index), to: folder + "/model.safetensors.index.json")
        return names
    }

    /// `adaptc init` leaves B = 0; give B values so the merge changes every weight.
    static func randomizeB(_ path: String, to output: String) throws {
        let file = try SafetensorsFile.read(path: path)
        var writer = SafetensorsWriter(metadata: file.metadata)
        for entry in file.tensors {
            let values = entry.name.hasSuffix(".B") ? random(entry.elementCount, scale: 0.01, seed: 5) : try file.floats(entry.name)
            writer.add(entry.name, floats: values, shape: entry.shape)
        }
        try writer.write(to: output)
    }

    /// cp + fsync per file into fresh files: what any atomic writer of the same bytes pays.
    static func durableCopy(_ files: [String], to folder: String) throws {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let chunk = 8 << 20
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: chunk, alignment: 4096)
        defer { buffer.deallocate() }
        for file in files {
            let source = open(file, O_RDONLY), target = open(folder + "/" + (file as NSString).lastPathComponent, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
            guard source >= 0, target >= 0 else { throw BenchError("cannot copy \(file)") }
            while true {
                let n = read(source, buffer, chunk)
                if n <= 0 { break }
                var written = 0
                while written < n { written += write(target, buffer + written, n - written) }
            }
            fsync(target)
            close(source)
            close(target)
        }
    }

    /// Runs a child and waits for it; its wall time and peak resident memory.
    /// The peak comes from GNU time (`/usr/bin/time -f %M`) when it is there:
    /// Linux carries ru_maxrss across exec, so a child spawned straight from
    /// this (large) process would report this process's pages as its own.
    static func spawn(_ path: String, _ arguments: [String], stdout: String = "/dev/null") throws -> (status: Int32, seconds: Double, maxResidentBytes: Int) {
        let time = "/usr/bin/time"
        if FileManager.default.isExecutableFile(atPath: time) {
            let report = FileManager.default.temporaryDirectory.appendingPathComponent("adaptc-bench-rss-\(getpid())").path
            defer { try? FileManager.default.removeItem(atPath: report) }
            let run = try spawnDirect(time, ["-f", "%M", "-o", report, path] + arguments, stdout: stdout)
            let text = (try? String(contentsOfFile: report, encoding: .utf8)) ?? ""
            let kilobytes = text.split(whereSeparator: \.isNewline).last.flatMap { Int($0.trimmingCharacters(in: .whitespaces)) }
            return (run.status, run.seconds, kilobytes.map { $0 * 1024 } ?? run.maxResidentBytes)
        }
        return try spawnDirect(path, arguments, stdout: stdout)
    }

    static func spawnDirect(_ path: String, _ arguments: [String], stdout: String = "/dev/null") throws -> (status: Int32, seconds: Double, maxResidentBytes: Int) {
        var pid: pid_t = 0
        let argv = ([path] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var fileActions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&fileActions)
        posix_spawn_file_actions_addopen(&fileActions, 1, stdout, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        defer { posix_spawn_file_actions_destroy(&fileActions) }
        let start = DispatchTime.now().uptimeNanoseconds
        guard posix_spawn(&pid, path, &fileActions, nil, argv, environ) == 0 else { throw BenchError("cannot run \(path)") }
        var status: Int32 = 0
        var usage = rusage()
        _ = wait4(pid, &status, 0, &usage)
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9
        return ((status >> 8) & 0xFF, seconds, usage.ru_maxrss * 1024)
    }

    /// Max distance in BF16 ulps between merged weights and the float64 merge
    /// rounded to nearest even (every 16th row), and whether every untargeted
    /// tensor is byte for byte the base's.
    static func checkMerge(root: String, shards: [String]) throws -> (maxULP: Int, carried: Bool) {
        let adapter = try SafetensorsFile.read(path: root + "/adapter.safetensors")
        var maxULP = 0, carried = true
        for shard in shards {
            let base = try SafetensorsFile.read(path: root + "/base/" + shard)
            let merged = try SafetensorsFile.read(path: root + "/merged/" + shard)
            for entry in base.tensors {
                let targeted = ["self_attn.q_proj", "self_attn.v_proj", "mlp.down_proj"].first { entry.name.hasSuffix(".\($0).weight") }
                guard let module = targeted else {
                    carried = try carried && base.rawBytes(entry.name) == merged.rawBytes(entry.name)
                    continue
                }
                let layer = entry.name.split(separator: ".")[2]
                let a = try adapter.floats("lora.\(layer).\(module).A"), b = try adapter.floats("lora.\(layer).\(module).B")
                let (out, inFeatures) = (entry.shape[0], entry.shape[1])
                let w = try base.floats(entry.name), got = try merged.rawBytes(entry.name)
                for i in stride(from: 0, to: out, by: 16) {
                    for j in 0..<inFeatures {
                        var delta = 0.0
                        for k in 0..<16 { delta += Double(b[i * 16 + k]) * Double(a[k * inFeatures + j]) }
                        let expected = Int(FloatNarrowing.bfloat16Bits(Float(Double(w[i * inFeatures + j]) + 2 * delta)))
                        let bits = Int(got[2 * (i * inFeatures + j)]) | Int(got[2 * (i * inFeatures + j) + 1]) << 8
                        maxULP = max(maxULP, abs(bits - expected))  // same sign: raw BF16 patterns differ by the ulp count
                    }
                }
                base.releasePages(entry)
                merged.releasePages(entry)
            }
        }
        return (maxULP, carried)
    }
}
