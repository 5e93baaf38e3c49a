import AdaptRuntime
import Foundation

/// `dora-prepare`: what `prepare(base:)` costs for one DoRA pair of a 7B-class
/// model (W 4096×4096, rank 16): `DoRAPair.rowNorms` (float64, never forming
/// W + s·B·A) on 1 and `threads` threads, beside one base GEMM x·Wᵀ of 512
/// token rows (OpenBLAS, one thread) for scale: the norms run once per weight
/// update, the GEMM once per forward.
extension Bench {
    static func doraPrepare(threads: Int) throws {
        let (out, inDim, rank, rows) = (4096, 4096, 16, 512)
        var rng = SeededRandom(seed: 29, stream: "dora-prepare")
        let w = (0..<(out * inDim)).map { _ in rng.uniform(0.02) }
        let a = (0..<(rank * inDim)).map { _ in rng.uniform(0.02) }
        let b = (0..<(out * rank)).map { _ in rng.uniform(0.02) }
        let x = (0..<(rows * inDim)).map { _ in rng.uniform(1) }
        var norms = [Float](repeating: 0, count: out), y = [Float](repeating: 0, count: rows * out)
        func prepare(_ t: Int) -> () -> Void {
            { DoRAPair.rowNorms(w: w, a: a, b: b, scale: 2, out: out, in: inDim, rank: rank, into: &norms, threads: t) }
        }
        let gemm = {
            BLAS.gemm(transA: false, transB: true, m: rows, n: out, k: inDim, alpha: 1, a: x, lda: inDim, b: w, ldb: inDim,
                      beta: 0, c: &y, ldc: out)
        }
        let seconds = try timeAlternating([prepare(1), prepare(threads), gemm], repeats: 5, warmup: 1)
        let flops = Double(2 * out * inDim * (rank + 1))
        for (t, s) in [(1, seconds[0]), (threads, seconds[1])] {
            emit([("case", "dora-prepare"), ("impl", "adaptc"), ("out", out), ("in", inDim), ("rank", rank), ("threads", t),
                  ("seconds", s), ("gflops", flops / s * 1e-9), ("base_gemm_512_seconds", seconds[2]),
                  ("ratio_to_base_gemm", s / seconds[2])])
        }
    }
}
