import AdaptRuntime
import Foundation
import GeneratedAdapters

extension Bench {
    /// `prune-tt`: data-weighted TT-rounding (`TTRounding.round`, threshold 0.9,
    /// scope pair) of tt-xlayer's train — the generated `BenchTTXLayerAdapter`
    /// with the cross-layer cases' random parameters: L 24, modules q/k/v/o, out
    /// and in 4·8·4·8, order `[layer, module, out…, in…]`, bond ranks 8 — with
    /// the `prune` case's 512 calibration rows per layer, against the adapter's
    /// own forward of all 96 pairs on the same rows (DESIGN §8 target: rounding
    /// ≤ 2 forwards). The four modules of a layer read one `x` (`model.inputs`),
    /// so the calibration has one input per layer; it is the rows themselves
    /// (building it does no work), and the rounding never forms a Gram.
    ///
    /// Floors: the forward's as tt-xlayer's (x read once, each pair's y read and
    /// written, the cores read once; its FLOPs at n 512). The rounding's memory
    /// floor reads the rows once; its compute floor is the FLOPs of the
    /// rows-based formulation (`roundingFlops`), the cheapest exact one known here.
    static func pruneTT(threads: Int) throws {
        let (layers, modules, n, d) = (24, 4, 512, 1024)
        let adapter = makeAdapter(BenchTTXLayerAdapter.self, threads: threads)
        guard let (cores, ranks) = adapter.ttCores(group: "tt") else { preconditionFailure("prune-tt: BenchTTXLayer has no train tt") }
        let factors = [4, 8, 4, 8]
        let modes = [TTMode(.layer, size: layers), TTMode(.module, size: modules)]
            + factors.enumerated().map { TTMode(.out, size: $1, factor: $0) } + factors.enumerated().map { TTMode(.in, size: $1, factor: $0) }
        let xs = calibrationRows(layers: layers, n: n, width: d)
        let ys = (0..<modules).map { _ in buffer([Float](repeating: 0, count: n * d)) }
        defer { xs.forEach { $0.deallocate() }; ys.forEach { $0.deallocate() } }
        let moduleList = Array(BenchTTXLayerAdapter.Module.allCases)
        let forward = {
            for l in 0..<layers { try adapter.forward(layer: l, modules: moduleList, x: UnsafeBufferPointer(xs[l]), rows: n, outputs: ys) }
        }
        let rows = xs.map { Array($0) }
        let calibration = TTCalibration(inputs: rows, counts: rows.map { _ in n }, inputOfPair: (0..<(layers * modules)).map { $0 / modules },
                                        layers: layers, modules: modules, inFeatures: d)
        var sink = 0.0
        var bondRanks: [Int] = []
        let rounding = {
            let result = TTRounding.round(cores: cores, ranks: ranks, modes: modes, calibration: calibration, scale: 1,
                                          options: .init(threshold: 0.9, threads: threads))
            sink += result.lostEnergy
            bondRanks = result.bondRanks
        }
        let rho = ranks[2 + factors.count]
        let forwardFlops = 2 * n * rho * d * (layers + layers * modules)
        let flops = roundingFlops(modes: modes, ranks: ranks, rows: n, inputs: layers)
        let reading = xs.map { UnsafeBufferPointer($0) }
        let floors = [CaseFloor(reading: [BenchTTXLayerAdapter.parameterCount],
                                sharing: .init(reading: reading, accumulating: Array(repeating: ys, count: layers).flatMap { $0 }),
                                flops: forwardFlops, threads: threads),
                      CaseFloor(reading: [BenchTTXLayerAdapter.parameterCount], sharing: .init(reading: reading), flops: flops, threads: threads)]
        let times = try timeWithFloors([forward, rounding], floors: floors, repeats: 5, warmup: 1)
        emit([("case", "prune-tt"), ("variant", "forward"), ("n", n), ("rank", 8), ("impl", "adaptc"),
              ("threads", threads), ("seconds", times[0]), ("flops", forwardFlops)], floor: floors[0])
        emit(floors[0].row(case: "prune-tt", n: n, of: "forward"))
        emit([("case", "prune-tt"), ("variant", "rounding"), ("n", n), ("rank", 8), ("impl", "adaptc"),
              ("threads", threads), ("seconds", times[1]), ("flops", flops), ("forwards", times[1] / times[0]),
              ("bond_ranks", bondRanks.map(String.init).joined(separator: " "))], floor: floors[1])
        emit(floors[1].row(case: "prune-tt", n: n, of: "rounding"))
        if sink.isNaN { print("") }
    }

    /// FLOPs of the rounding's contractions with the rows (float64; everything
    /// else is bond-sized): per input, the input's and the rounded train's
    /// segment (2·n·in·ρ0·ρ1 each), and per bond inside the in segment (split
    /// into i_L·i_R digits, bond rank r) the pooled spectrum — W = rows ×_{i_R} S_R
    /// and its Gram, or the rows' Gram over i_R, whichever is cheaper, as
    /// `TTWeightedMetric.inside` chooses — and Φ: rows ×_{i_R} (S_R·V), then
    /// ×_{i_L} α_c for each of the r components. For the bench's order the
    /// segment is the last four cores (ρ1 = 1, no out digits inside it).
    static func roundingFlops(modes: [TTMode], ranks: [Int], rows n: Int, inputs: Int) -> Int {
        let first = modes.firstIndex { $0.kind == .in }!, d = modes[first...].reduce(1) { $0 * $1.size }
        var perInput = 2 * (2 * n * d * ranks[first])
        for k in (first + 1)..<modes.count {
            let inL = modes[first..<k].reduce(1) { $0 * $1.size }, inR = d / inL, r = ranks[k], rho0 = ranks[first]
            let viaW = inL * inR * r + inL * r * r, viaGram = inL * inR * inR
            perInput += 2 * n * min(viaW, viaGram) + 2 * n * (inL * inR * r + inL * rho0 * r)
        }
        return inputs * perInput
    }
}
