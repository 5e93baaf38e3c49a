import AdaptRuntime
import Foundation

/// `init-tucker` (no target in DESIGN §8: measured as it is): `init: {method:
/// hooi}` on Specs/lotr-tucker's group — LoTR's Tucker-2 on 12 layers × q/v of
/// 768², the stacked tensor `[12, 2, 768, 768]` with layer and module `full`
/// and out, in at rank 16 — as `Tucker.hooi` runs it (HOSVD start, at most 5
/// sweeps, stopping when the fit changes by < 1e-6), on the float32 tensor in
/// memory. The data is init-tt's formula over the 24 (layer, module) slices
/// (`Bench.formulaTensor`), which Tools/Peers/init-tucker.py rebuilds for
/// tensorly's `partial_tucker` on the same modes, ranks and rule.
///
/// Floors for the sweeps it ran: memory, X read 3 + 2·sweeps times (the two
/// Gram matrices of the HOSVD, could they share a pass, then the core's
/// projection; each HOOI sweep one projection per reduced mode); compute, the
/// Gram matrices (n·|X| each) and those projections (2·16·|X| each).
extension Bench {
    static func initTucker(threads: Int) throws {
        let (layers, modules, size, rank) = (12, 2, 768, 16)
        let x = formulaTensor(slices: layers * modules, size: size, threads: threads)
        defer { x.deallocate() }
        let shape = [layers, modules, size, size], ranks: [Int?] = [nil, nil, rank, rank]
        var result: Tucker.Decomposition?
        let decompose = {
            result = try Tucker.hooi(UnsafeBufferPointer(x), shape: shape, ranks: ranks, sweeps: 5, tolerance: 1e-6,
                                     threads: threads)
        }
        try decompose()
        let sweeps = result!.sweeps, count = x.count
        let reads = 3 + 2 * sweeps
        let flops = 2 * size * count + (1 + 2 * sweeps) * 2 * rank * count
        let floor = CaseFloor(sharing: CaseFloor.Shared(reading: Array(repeating: UnsafeBufferPointer(x), count: reads)),
                              flops: flops, threads: threads)
        let seconds = try timeWithFloors([decompose], floors: [floor], repeats: 3, warmup: 1)[0]
        emit([("case", "init-tucker"), ("variant", "hooi"), ("n", layers * modules), ("impl", "adaptc"), ("threads", threads),
              ("seconds", seconds), ("flops", flops), ("sweeps", sweeps), ("fit", result!.fit),
              ("rel_err", result!.relativeError)], floor: floor)
        emit(floor.row(case: "init-tucker", n: layers * modules, of: "hooi"))
    }
}
