import AdaptRuntime
import Foundation

/// `init-tt-metatt` (DESIGN §8): `adaptc init` with tt-svd on MetaTT's spec
/// (Specs/metatt-bert: 12 layers × q/k/v/o of 768², order [in, layer, module,
/// out], rank 8), from an F32 base written here: every map a shared rank-32
/// part plus noise. The real executable runs as a child, so `peak_rss_mb` is
/// its own; the floor it must stay under is the stacked tensor
/// (`stacked_mb`, float32), which a TT-SVD that holds it would need at least.
/// Three runs, the median's seconds.
extension Bench {
    static func initTTMetaTT(threads: Int) throws {
        let adaptc = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
            .deletingLastPathComponent().appendingPathComponent("adaptc").path
        guard FileManager.default.isExecutableFile(atPath: adaptc) else {
            throw BenchError("init-tt-metatt runs \(adaptc); build it: swift build -c release --product adaptc")
        }
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("adaptc-init-tt-\(getpid())").path
        try? FileManager.default.removeItem(atPath: root)
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: root) }
        let (layers, modules, size) = (12, ["query", "key", "value", "output"], 768)
        let key = { (l: Int, m: String) in "encoder.layer.\(l).attention.\(m).weight" }
        let names = (0..<layers).flatMap { l in modules.map { key(l, $0) } }.sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
        let writer = try SafetensorsStreamWriter(path: root + "/base.safetensors", metadata: ["format": "pt"],
                                                 tensors: names.map { TensorDeclaration(name: $0, shape: [size, size]) })
        var random = SeededRandom(seed: 1, stream: "init-tt-metatt")
        let shared = (0..<(size * 32)).map { _ in random.normal(standardDeviation: 1) }
        for name in names {
            let right = (0..<(32 * size)).map { _ in random.normal(standardDeviation: 1) }
            var w = (0..<(size * size)).map { _ in random.normal(standardDeviation: 0.02) }
            BLAS.gemm(transA: false, transB: false, m: size, n: size, k: 32, alpha: 0.05, a: shared, lda: 32,
                      b: right, ldb: size, beta: 1, c: &w, ldc: size)
            try w.withUnsafeBufferPointer { try writer.append(name, floats: $0) }
        }
        try writer.commit()
        let spec = """
            adaptc: 1
            name: MetaTTBert
            model:
              layers: \(layers)
              modules: {\(modules.map { "\($0): [\(size), \(size)]" }.joined(separator: ", "))}
              weights: {key: "encoder.layer.{layer}.attention.{module}.weight"}
            adapters:
              - name: attn
                structure: tensor-train
                modules: [\(modules.joined(separator: ", "))]
                order: [in, layer, module, out]
                rank: 8
                alpha: 16
                init: {method: tt-svd}
            """
        try spec.write(toFile: root + "/spec.adapt.yaml", atomically: true, encoding: .utf8)
        var seconds: [Double] = [], peak = 0
        for _ in 0..<3 {
            let run = try spawn(adaptc, ["init", root + "/spec.adapt.yaml", "--base", root + "/base.safetensors",
                                         "-o", root + "/a.safetensors", "--threads", String(threads)])
            guard run.status == 0 else { throw BenchError("adaptc init failed (status \(run.status))") }
            seconds.append(run.seconds)
            peak = max(peak, run.maxResidentBytes)
        }
        let stacked = 4 * layers * modules.count * size * size
        // Gram of the first unfolding [768, 12·4·768] and its projection: the flops that matter.
        let flops = 2 * size * size * layers * modules.count * size + 2 * 8 * size * layers * modules.count * size
        emit([("case", "init-tt-metatt"), ("variant", "tt-svd"), ("n", layers * modules.count), ("impl", "adaptc"),
              ("threads", threads), ("seconds", seconds.sorted()[1]), ("flops", flops),
              ("peak_rss_mb", Double(peak) / 1_048_576), ("stacked_mb", Double(stacked) / 1_048_576),
              ("floor", "peak_rss_mb < stacked_mb")])
    }
}
