import AdaptRuntime
import Foundation

/// `init-cp` (DESIGN §8): CP-ALS as `init: {method: cp-als}` runs it, rank 16,
/// the HOSVD start, stopping when the fit changes by < 1e-6 or after 100
/// sweeps, on 48 stacked weights (12 layers × 4 modules) of 384×384 as one
/// tensor [48, 384, 384]. Three modes so the start needs no padding
/// (R ≤ every mode): Tools/Peers/init-cp.py gives tensorly's `parafac` the same
/// start (init='svd'), the same rule (tol 1e-6 on the change of
/// ‖X − X̂‖/‖X‖ = 1 − fit, n_iter_max 100) and the same formula-defined data:
/// `X[p,o,i] = Σ_{k<24} sin(0.7(p+1)(k+1))·sin(0.37(o+1)(k+1))·cos(0.11(i+1)(k+1))/(k+1)
/// + 0.01·sin(12.9898·(p·384² + o·384 + i))`, float64 then float32.
///
/// Floors per run, for the sweeps it took: memory, X (float32) read twice a
/// sweep (the kept product and the one it serves the largest mode with);
/// compute, those two GEMMs with R columns (2·2·|X|·R FLOPs a sweep).
extension Bench {
    static func initCP(threads: Int) throws {
        let (p, n, rank) = (48, 384, 16)
        let shape = [p, n, n], count = p * n * n
        var x = [Float](repeating: 0, count: count)
        let terms = 24
        // The separable terms: a[l][k] (with the 1/(k+1) weight), b[o][k], c[i][k].
        var a = [[Double]](repeating: [Double](repeating: 0, count: terms), count: p)
        var b = [[Double]](repeating: [Double](repeating: 0, count: terms), count: n)
        var c = b
        for k in 0..<terms {
            let f = Double(k + 1)
            for l in 0..<p { a[l][k] = sin(0.7 * Double(l + 1) * f) / f }
            for o in 0..<n {
                b[o][k] = sin(0.37 * Double(o + 1) * f)
                c[o][k] = cos(0.11 * Double(o + 1) * f)
            }
        }
        x.withUnsafeMutableBufferPointer { buffer in
            let x = buffer.baseAddress!
            Parallel.forEach(p, threads: threads) { range in
                for l in range {
                    for o in 0..<n {
                        for i in 0..<n {
                            var sum = 0.0
                            for k in 0..<terms { sum += a[l][k] * b[o][k] * c[i][k] }
                            let e = (l * n + o) * n + i
                            let noise: Double = 0.01 * sin(12.9898 * Double(e))
                            x[e] = Float(sum + noise)
                        }
                    }
                }
            }
        }
        let settings = CPALS.Settings(rank: rank, iterations: 100, tolerance: 1e-6, seed: 0)
        var result: CPALS.Decomposition?
        let decompose = {
            result = try x.withUnsafeBufferPointer { try CPALS.decompose($0, shape: shape, settings: settings, threads: threads) }
        }
        try decompose()
        let sweeps = result!.sweeps
        let flops = sweeps * 2 * 2 * count * rank
        let memory = StreamingPass(readingFloats: [count], writingFloats: [], threads: threads)
        var fma = 0
        let times = try timeAlternating([decompose, { memory.run() }, { fma = FMALoop.run(flops: flops, threads: threads).flops }],
                                        repeats: 3, warmup: 0)
        let memoryFloor = times[1] * Double(2 * sweeps), computeFloor = times[2] * Double(flops) / Double(max(fma, 1))
        let floor = max(memoryFloor, computeFloor)
        let base: [(String, Any)] = [("case", "init-cp"), ("n", p), ("impl", "adaptc"), ("threads", threads)]
        emit(base + [("variant", "cp-als"), ("seconds", times[0]), ("flops", flops), ("sweeps", sweeps),
                     ("fit", result!.fit), ("rel_err", result!.relativeError)])
        emit(base + [("variant", "floor"), ("seconds", floor), ("flops", flops), ("bytes", 2 * sweeps * 4 * count),
                     ("memory_floor", memoryFloor), ("compute_floor", computeFloor), ("vs_floor", times[0] / floor)])
    }
}
