import AdaptRuntime
import Foundation

extension Bench {
    /// `prune-tt`: data-weighted TT-rounding (`TTRounding.round`, threshold 0.9,
    /// scope pair) of tt-xlayer's train — L 24, modules 4, out and in 4·8·4·8,
    /// order `[layer, module, out…, in…]`, bond ranks 8 — with 512 calibration
    /// rows per layer, against the forward of the same train on the same rows
    /// (DESIGN §8 target: rounding ≤ 2 forwards). The four modules of a layer
    /// read one `x`, so the rounding forms one Gram `xᵀx` per layer (timed: it
    /// is part of pruning) and the pairs of a layer share it. Forward: the
    /// in-cores make one shared A `[8, 1024]` (prepared, untimed), per layer
    /// z = x·Aᵀ, per pair y = z·B[l,m]ᵀ (Kernels.gemm on `threads`), one `y` reused.
    static func pruneTT(threads: Int) throws {
        let (layers, modules, n, rank) = (24, 4, 512, 8)
        let factors = [4, 8, 4, 8], d = 1024
        let modes = [TTMode(.layer, size: layers), TTMode(.module, size: modules)]
            + factors.enumerated().map { TTMode(.out, size: $1, factor: $0) } + factors.enumerated().map { TTMode(.in, size: $1, factor: $0) }
        let sizes = modes.map(\.size)
        let ranks = [1] + (1..<sizes.count).map { k in min(rank, sizes[..<k].reduce(1, *), sizes[k...].reduce(1, *)) } + [1]
        let cores = sizes.indices.map { k in random(ranks[k] * sizes[k] * ranks[k + 1], scale: 0.3, seed: 700 + UInt64(k)) }
        let train = TensorTrain(cores: cores, sizes: sizes, ranks: ranks)
        // A [ρ, in] = the in cores' product (ρ the bond before the first in mode); B[l,m] [out, ρ].
        let firstIn = 2 + factors.count, rho = ranks[firstIn]
        let a = train.product(firstIn..<sizes.count).map(Float.init)  // [ρ·in, 1] = [ρ, in] row-major
        let left = train.product(0..<firstIn)  // [L·M·out, ρ], row-major over layer, module, out
        let bs = (0..<(layers * modules)).map { p in Array(left[(p * d * rho)..<((p + 1) * d * rho)]).map(Float.init) }
        let xs = (0..<layers).map { buffer(random(n * d, scale: 1, seed: 100 + UInt64($0))) }
        let z = buffer([Float](repeating: 0, count: n * rho)), y = buffer([Float](repeating: 0, count: n * d))
        defer { xs.forEach { $0.deallocate() }; z.deallocate(); y.deallocate() }
        let forward = {
            for l in 0..<layers {
                a.withUnsafeBufferPointer { a in
                    Kernels.gemm(transA: false, transB: true, m: n, n: rho, k: d, alpha: 1, a: xs[l].baseAddress!, lda: d,
                                 b: a.baseAddress!, ldb: d, beta: 0, c: z.baseAddress!, ldc: rho, threads: threads)
                }
                for m in 0..<modules {
                    bs[l * modules + m].withUnsafeBufferPointer { b in
                        Kernels.gemm(transA: false, transB: true, m: n, n: d, k: rho, alpha: 1, a: z.baseAddress!, lda: rho,
                                     b: b.baseAddress!, ldb: rho, beta: 0, c: y.baseAddress!, ldc: d, threads: threads)
                    }
                }
            }
        }
        var sink = 0.0
        var bondRanks: [Int] = []
        // The calibration is the rows themselves (no Gram is formed): one input per layer, read by its four modules.
        let rows = xs.map { Array($0) }
        let calibration = TTCalibration(inputs: rows, counts: rows.map { _ in n }, inputOfPair: (0..<(layers * modules)).map { $0 / modules },
                                        layers: layers, modules: modules, inFeatures: d)
        let rounding = {
            let result = TTRounding.round(cores: cores, ranks: ranks, modes: modes, calibration: calibration, scale: 1,
                                          options: .init(threshold: 0.9, threads: threads))
            sink += result.lostEnergy
            bondRanks = result.bondRanks
        }
        let times = try timeAlternating([forward, rounding], repeats: 5, warmup: 1)
        let forwardFlops = 2 * n * rho * d * (layers + layers * modules)
        emit([("case", "prune-tt"), ("variant", "forward"), ("n", n), ("rank", rank), ("impl", "adaptc"),
              ("threads", threads), ("seconds", times[0]), ("flops", forwardFlops)])
        emit([("case", "prune-tt"), ("variant", "rounding"), ("n", n), ("rank", rank), ("impl", "adaptc"),
              ("threads", threads), ("seconds", times[1]), ("forwards", times[1] / times[0]),
              ("bond_ranks", bondRanks.map(String.init).joined(separator: " "))])
        if sink.isNaN { print("") }
    }
}
