import AdaptRuntime
import Foundation

extension Bench {
    /// `prune`: LoRA-drop's importance `Σ_rows ‖x·ΔWᵀ‖²` of 24 layers × 4 modules
    /// 1024×1024 on 512 calibration rows, against the adapters' forward on the
    /// same rows (DESIGN §8 target: importance ≤ 2 forwards). Forward: per pair
    /// `y = s·(x·Aᵀ)·Bᵀ` as the runtime's pair forward runs it (Kernels.gemm,
    /// split over `threads`), one `y` reused; importance: `LoRAImportance.outputEnergies`,
    /// parallel over pairs. The four modules of a layer read one `x`.
    static func prune(threads: Int) throws {
        let (layers, modules, d, n) = (24, 4, 1024, 512)
        let pairs = layers * modules
        let xs = calibrationRows(layers: layers, n: n, width: d)
        let y = buffer([Float](repeating: 0, count: n * d))
        defer { xs.forEach { $0.deallocate() }; y.deallocate() }
        for rank in [8, 16] {
            let factors = (0..<pairs).map { p in
                LoRAFactors(a: random(rank * d, scale: 0.03, seed: 1000 + UInt64(p)), b: random(d * rank, scale: 0.03, seed: 5000 + UInt64(p)),
                            rank: rank, outFeatures: d, inFeatures: d, scale: 2)
            }
            let z = buffer([Float](repeating: 0, count: n * rank))
            defer { z.deallocate() }
            let inputs = (0..<pairs).map { UnsafeBufferPointer(xs[$0 / modules]) }
            let rows = [Int](repeating: n, count: pairs)
            let forward = {
                for (p, f) in factors.enumerated() {
                    f.a.withUnsafeBufferPointer { a in
                        f.b.withUnsafeBufferPointer { b in
                            Kernels.gemm(transA: false, transB: true, m: n, n: rank, k: d, alpha: 1, a: inputs[p].baseAddress!, lda: d,
                                         b: a.baseAddress!, ldb: d, beta: 0, c: z.baseAddress!, ldc: rank, threads: threads)
                            Kernels.gemm(transA: false, transB: true, m: n, n: d, k: rank, alpha: Float(f.scale), a: z.baseAddress!, lda: rank,
                                         b: b.baseAddress!, ldb: rank, beta: 0, c: y.baseAddress!, ldc: d, threads: threads)
                        }
                    }
                }
            }
            var sink = 0.0
            let importance = { sink += LoRAImportance.outputEnergies(factors, inputs: inputs, rows: rows, threads: threads).reduce(0, +) }
            let forwardFlops = pairs * 2 * n * rank * (d + d), importanceFlops = pairs * (2 * n * rank * d + n * rank * rank + d * rank * rank)
            // Floors: each layer's x and every factor read once; the forward also writes each pair's y once
            // (the one reused y, 96 times); the importance writes nothing but its 96 sums.
            let reading = CaseFloor.Shared(reading: xs.map { UnsafeBufferPointer($0) })
            let floors = [CaseFloor(reading: [pairs * 2 * rank * d],
                                    sharing: .init(reading: reading.reading, writing: [UnsafeMutableBufferPointer<Float>](repeating: y, count: pairs)),
                                    flops: forwardFlops, threads: threads),
                          CaseFloor(reading: [pairs * 2 * rank * d], sharing: reading, flops: importanceFlops, threads: threads)]
            let times = try timeWithFloors([forward, importance], floors: floors, repeats: 15, warmup: 2)
            emit([("case", "prune"), ("variant", "forward"), ("n", n), ("rank", rank), ("impl", "adaptc"),
                  ("threads", threads), ("seconds", times[0]), ("flops", forwardFlops)], floor: floors[0])
            emit(floors[0].row(case: "prune", n: n, of: "forward", extra: [("rank", rank)]))
            emit([("case", "prune"), ("variant", "importance"), ("n", n), ("rank", rank), ("impl", "adaptc"),
                  ("threads", threads), ("seconds", times[1]), ("flops", importanceFlops),
                  ("forwards", times[1] / times[0])], floor: floors[1])
            emit(floors[1].row(case: "prune", n: n, of: "importance", extra: [("rank", rank)]))
            if sink.isNaN { print("") }
        }
    }

    /// The calibration rows of the prune cases: `[n, width]` per layer, uniform
    /// in [−1, 1), the same in `prune` and `prune-tt`.
    static func calibrationRows(layers: Int, n: Int, width: Int) -> [UnsafeMutableBufferPointer<Float>] {
        (0..<layers).map { buffer(random(n * width, scale: 1, seed: 100 + UInt64($0))) }
    }
}
