import AdaptRuntime
import Foundation
import GeneratedAdapters

/// `Tools/bench`: the cases of DESIGN §8 as JSON lines. Buffers are allocated
/// once and warmed up before timing; `seconds` is the median of the repeats,
/// variants of one case alternate so drift on a shared machine hits both alike.
@main
struct Bench {
    /// A case that cannot run (a missing binary, a peer's file) is one line on stderr and exit 1, not a crash.
    static func main() {
        do {
            try run()
        } catch {
            FileHandle.standardError.write(Data("adaptc-bench: error: \(error)\n".utf8))
            exit(1)
        }
    }

    static func run() throws {
        var cases: [String] = []
        var threads = 2
        var scalingThreads = [1, 2]
        var arguments = CommandLine.arguments.dropFirst()
        while let argument = arguments.popFirst() {
            if argument == "--threads", let value = arguments.popFirst().flatMap(Int.init), value >= 0 {
                threads = value
            } else if argument == "--scaling-threads", let list = arguments.popFirst().map({ $0.split(separator: ",").compactMap { Int($0) } }),
                      !list.isEmpty, list.allSatisfy({ $0 > 0 }) {
                scalingThreads = list
            } else if argument.hasPrefix("-") {
                FileHandle.standardError.write(Data("usage: adaptc-bench [CASE…] [--threads N] [--scaling-threads 1,2,4,…]; cases: \(known.joined(separator: " "))\n".utf8))
                exit(64)
            } else {
                cases.append(argument)
            }
        }
        let family = BLAS.kernelFamily
        FileHandle.standardError.write(Data("adaptc-bench: OpenBLAS kernels \(family.name)\(family.replaced.map { " (OpenBLAS chose \($0); the CPU supports more)" } ?? "")\n".utf8))
        let crossLayer = ["tt-xlayer", "lora-xlayer", "lotr-xlayer", "cp-xlayer"]
        let asked = cases.isEmpty ? known : cases
        if asked.contains(where: crossLayer.contains) { try Bench.crossLayer(asked.filter(crossLayer.contains), threads: threads) }
        for name in asked {
            switch name {
            case _ where crossLayer.contains(name): continue
            case "backward": try backwardCase(threads: threads)
            case "scaling": try scalingCase(threadCounts: scalingThreads)
            case "lora-unmerged": try loraUnmerged(threads: threads)
            case "decode": try decode(threads: threads)
            case "prune": try prune(threads: threads)
            case "prune-tt": try pruneTT(threads: threads)
            case "init-pissa": try initPissa(threads: threads)
            case "init-loftq": try initLoftQ(threads: threads)
            case "init-tt": try initTT(threads: threads)
            case "init-tt-metatt": try initTTMetaTT(threads: threads)
            case "init-cp": try initCP(threads: threads)
            case "init-tucker": try initTucker(threads: threads)
            case "merge-sharded": try mergeSharded(threads: threads)
            case "dora-prepare": try doraPrepare(threads: threads)
            default:
                FileHandle.standardError.write(Data("adaptc-bench: unknown case \(name); known: \(known.joined(separator: " "))\n".utf8))
                exit(64)
            }
        }
    }

    static let known = ["lora-unmerged", "decode", "tt-xlayer", "lora-xlayer", "lotr-xlayer", "cp-xlayer", "backward", "scaling", "prune", "prune-tt", "init-pissa", "init-loftq", "init-tt", "init-tt-metatt", "init-cp", "init-tucker", "merge-sharded", "dora-prepare"]

    static func emit(_ fields: [(String, Any)]) {
        let body = fields.map { key, value -> String in
            let text: String
            switch value {
            case let s as String: text = "\"\(s)\""
            case let d as Double: text = String(format: "%.6g", d)
            default: text = "\(value)"
            }
            return "\"\(key)\": \(text)"
        }
        // Unbuffered, so each line shows as soon as its case is measured.
        FileHandle.standardOutput.write(Data(("{" + body.joined(separator: ", ") + "}\n").utf8))
    }

    /// Median seconds of each variant, the variants run alternately.
    static func timeAlternating(_ variants: [() throws -> Void], repeats: Int, warmup: Int = 3) throws -> [Double] {
        for _ in 0..<warmup { for v in variants { try v() } }
        var samples = [[Double]](repeating: [], count: variants.count)
        for _ in 0..<repeats {
            for (i, v) in variants.enumerated() {
                let start = DispatchTime.now().uptimeNanoseconds
                try v()
                samples[i].append(Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9)
            }
        }
        return samples.map { $0.sorted()[$0.count / 2] }
    }

    static func random(_ count: Int, scale: Float, seed: UInt64) -> [Float] {
        var state = seed
        return (0..<count).map { _ in
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return (Float(state >> 40) / Float(1 << 24) * 2 - 1) * scale
        }
    }

    /// A buffer allocated once for the whole run (steady state, as an app runs).
    static func buffer(_ values: [Float]) -> UnsafeMutableBufferPointer<Float> {
        let b = UnsafeMutableBufferPointer<Float>.allocate(capacity: values.count)
        _ = b.initialize(from: values)
        return b
    }

    /// `lora-unmerged`: W [4096, 4096], r 16: the base GEMM `y = x·Wᵀ` alone vs
    /// the base plus the unmerged adapter `y += s·(x·Aᵀ)·Bᵀ` (generated code).
    static func loraUnmerged(threads: Int) throws {
        let d = 4096
        let weight = buffer(random(d * d, scale: 0.02, seed: 1))
        defer { weight.deallocate() }
        let adapter = BenchLoraAdapter(threads: threads)
        _ = adapter.parameters.update(fromContentsOf: random(adapter.parameterCount, scale: 0.02, seed: 2))
        for n in [64, 1] {
            let x = buffer(random(n * d, scale: 1, seed: 3)), y = buffer([Float](repeating: 0, count: n * d))
            defer { x.deallocate(); y.deallocate() }
            let base = {
                Kernels.gemm(transA: false, transB: true, m: n, n: d, k: d, alpha: 1, a: x.baseAddress!, lda: d,
                             b: weight.baseAddress!, ldb: d, beta: 0, c: y.baseAddress!, ldc: d, threads: threads)
            }
            let withAdapter = {
                base()
                try adapter.forward(layer: 0, module: .proj, x: UnsafeBufferPointer(x), rows: n, y: y)
            }
            let baseFlops = 2 * n * d * d, adapterFlops = 2 * n * 16 * (d + d)
            // Floors: W and x read, y written once (beta 0); with the adapter also A and B read once (y written once still: the floor of a fused base+adapter).
            let sharing = CaseFloor.Shared(reading: [UnsafeBufferPointer(weight), UnsafeBufferPointer(x)], writing: [y])
            let floors = [CaseFloor(sharing: sharing, flops: baseFlops, threads: threads),
                          CaseFloor(reading: [BenchLoraAdapter.parameterCount], sharing: sharing,
                                    flops: baseFlops + adapterFlops, threads: threads)]
            let times = try timeWithFloors([base, withAdapter], floors: floors, repeats: n == 1 ? 400 : 100)
            emit([("case", "lora-unmerged"), ("variant", "base"), ("n", n), ("impl", "adaptc"),
                  ("threads", threads), ("seconds", times[0]), ("flops", baseFlops)], floor: floors[0])
            emit(floors[0].row(case: "lora-unmerged", n: n, of: "base"))
            emit([("case", "lora-unmerged"), ("variant", "base+adapter"), ("n", n), ("impl", "adaptc"),
                  ("threads", threads), ("seconds", times[1]), ("flops", baseFlops + adapterFlops),
                  ("overhead", times[1] / times[0] - 1)], floor: floors[1])
            emit(floors[1].row(case: "lora-unmerged", n: n, of: "base+adapter"))
        }
    }
}
