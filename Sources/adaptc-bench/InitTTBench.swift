import AdaptRuntime
import Foundation

/// `init-tt-metatt` (DESIGN §8): `adaptc init` with tt-svd on MetaTT's order
/// at DESIGN's size (24 layers × q/k/v/o of 1024², order [in, layer, module,
/// out], rank 8: a 402 MB stacked tensor), from an F32 base written here by a formula Tools/Peers/init-tt.py
/// evaluates the same way (so `rel_err`, ‖W − ΔW‖/‖W‖ as adaptc prints it,
/// compares at equal data): `W[l,m][o,i] = Σ_k sin(0.37(o+1)(k+1))·
/// cos(0.11(i+1)(k+1) + l + 0.5m)/8` over k < 32, plus `0.02·sin(12.9898·(o·1024 + i) + 78.233·(4l + m))`. The real executable runs as a child, so `peak_rss_mb` is
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
        let (layers, modules, size) = (24, ["query", "key", "value", "output"], 1024)
        let key = { (l: Int, m: String) in "encoder.layer.\(l).attention.\(m).weight" }
        let names = (0..<layers).flatMap { l in modules.map { key(l, $0) } }.sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
        let writer = try SafetensorsStreamWriter(path: root + "/base.safetensors", metadata: ["format": "pt"],
                                                 tensors: names.map { TensorDeclaration(name: $0, shape: [size, size]) })
        // The rank-32 part as U·V (float64 sums, as the peer's numpy product), then the noise.
        var u = [Double](repeating: 0, count: size * 32)
        for o in 0..<size { for k in 0..<32 { u[o * 32 + k] = sin(0.37 * Double((o + 1) * (k + 1))) } }
        for name in names {
            let parts = name.split(separator: ".")
            let l = Double(Int(parts[2])!), m = Double(modules.firstIndex(of: String(parts[4]))!)
            var v = [Double](repeating: 0, count: 32 * size)
            for k in 0..<32 {
                for i in 0..<size {
                    let phase: Double = 0.11 * Double((i + 1) * (k + 1))
                    v[k * size + i] = cos(phase + l + 0.5 * m)
                }
            }
            var product = [Double](repeating: 0, count: size * size)
            Float64LinearAlgebra.gemm(transA: false, transB: false, m: size, n: size, k: 32, a: u, lda: 32,
                                      b: v, ldb: size, c: &product, ldc: size)
            var w = [Float](repeating: 0, count: size * size)
            let offset: Double = 78.233 * (4 * l + m)
            for e in 0..<(size * size) {
                let noise: Double = 0.02 * sin(12.9898 * Double(e) + offset)
                w[e] = Float(product[e] / 8 + noise)
            }
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
                                         "-o", root + "/a.safetensors", "--threads", String(threads)], stdout: root + "/line.txt")
            guard run.status == 0 else { throw BenchError("adaptc init failed (status \(run.status))") }
            seconds.append(run.seconds)
            peak = max(peak, run.maxResidentBytes)
        }
        let line = (try? String(contentsOfFile: root + "/line.txt", encoding: .utf8)) ?? ""
        let label = "relative error ‖W − ΔW‖/‖W‖ "
        let error = line.range(of: label).flatMap { Double(line[$0.upperBound...].prefix { $0.isNumber || $0 == "." }) } ?? -1
        let stacked = 4 * layers * modules.count * size * size
        // Gram of the first unfolding [1024, 24·4·1024] and its projection: the flops that matter.
        let flops = 2 * size * size * layers * modules.count * size + 2 * 8 * size * layers * modules.count * size
        emit([("case", "init-tt-metatt"), ("variant", "tt-svd"), ("n", layers * modules.count), ("impl", "adaptc"),
              ("threads", threads), ("seconds", seconds.sorted()[1]), ("flops", flops), ("rel_err", error),
              ("peak_rss_mb", Double(peak) / 1_048_576), ("stacked_mb", Double(stacked) / 1_048_576),
              ("floor", "peak_rss_mb < stacked_mb")])
    }
}
