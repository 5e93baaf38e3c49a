import AdaptRuntime
import Foundation

/// `init-loftq` (DESIGN §8): 5 LoftQ iterations, int4 symmetric groups of 64,
/// r 16, on 24 matrices 1024×1024 (init-pissa's U·diag(1/k)·Vᵀ plus noise),
/// matrices in parallel (TBB). The yardstick, timed alternately in the same
/// run: 5 randomized SVDs plus 5 quantisations of the same weights — the work
/// LoftQ cannot avoid; the target is `loftq ≤ 2× yardstick`. Floors: the
/// memory floor reads W and writes Q (as float32) and the factors once; the
/// compute floor is the randomized SVDs' GEMM FLOPs (2q + 2 passes of b = r + p
/// columns) plus the W − s·B·A product, per iteration.
extension Bench {
    static func initLoftQ(threads: Int) throws {
        let (count, size, rank, iterations) = (24, 1024, 16, 5)
        let matrices = try (0..<count).map { try spectralMatrix(size: size, seed: UInt64($0)) }
        let quantiser = Quantiser(bits: 4, group: 64, kind: .symmetric)
        let settings = TruncatedSVD.Randomized()
        let lock = NSLock()
        var failure: Error?
        /// Runs `body` on every matrix, in parallel; keeps the first error.
        func eachMatrix(_ body: (Int) throws -> Void) throws {
            Parallel.forEach(count, threads: threads) { range in
                for i in range {
                    do { try body(i) } catch { lock.withLock { failure = error } }
                }
            }
            if let failure { throw failure }
        }
        var results = [LoftQ.Result?](repeating: nil, count: count)
        let loftq = {
            try eachMatrix { i in
                let result = try matrices[i].withUnsafeBufferPointer {
                    try LoftQ.initialise($0, out: size, in: size, rank: rank, scale: 1, quantiser: quantiser,
                                         iterations: iterations, decomposition: .randomized(settings))
                }
                lock.withLock { results[i] = result }
            }
        }
        let yardstick = {
            try eachMatrix { i in
                try matrices[i].withUnsafeBufferPointer { w in
                    for _ in 0..<iterations {
                        _ = try TruncatedSVD.randomized(w, m: size, n: size, rank: rank, settings: settings)
                        _ = try quantiser.quantise(w, rows: size, columns: size)
                    }
                }
            }
        }
        let block = rank + settings.oversampling
        let flopsPerIteration = 2 * size * size * block * (2 * settings.powerIterations + 2) + 2 * size * size * rank
        let flops = count * iterations * flopsPerIteration
        let memory = StreamingPass(readingFloats: [count * size * size],
                                   writingFloats: [count * size * size, count * 2 * size * rank], threads: threads)
        var fma = 0
        let times = try timeAlternating([loftq, yardstick, { memory.run() }, { fma = FMALoop.run(flops: flops, threads: threads).flops }],
                                        repeats: 5, warmup: 1)
        let (memoryFloor, computeFloor) = (times[2], times[3] * Double(flops) / Double(max(fma, 1)))
        let worst = results.compactMap { $0 }.max { $0.relativeErrors.last! < $1.relativeErrors.last! }!
        let base: [(String, Any)] = [("case", "init-loftq"), ("n", count), ("impl", "adaptc"), ("threads", threads)]
        emit(base + [("variant", "loftq"), ("seconds", times[0]), ("flops", flops),
                     ("rel_err", worst.relativeErrors.last!), ("rel_err_int4_alone", worst.quantisationError),
                     ("vs_yardstick", times[0] / times[1])])
        emit(base + [("variant", "yardstick"), ("seconds", times[1]), ("flops", count * iterations * (flopsPerIteration - 2 * size * size * rank))])
        emit(base + [("variant", "floor"), ("seconds", max(memoryFloor, computeFloor)), ("flops", flops), ("bytes", memory.bytes),
                     ("memory_floor", memoryFloor), ("compute_floor", computeFloor), ("vs_floor", times[0] / max(memoryFloor, computeFloor))])
    }
}
