import AdaptRuntime
import Foundation
import GeneratedAdapters

/// The cross-layer cases of DESIGN §8 on 24 layers × q/k/v/o (1024×1024),
/// n = 64: the timed call is the forward of all 96 pairs — per layer, the
/// layer-fused forward of its four modules, which read one x — with prepared
/// state computed beforehand (as the numpy peers precompute their factors);
/// `prepare` is timed as its own variant.
extension Bench {
    struct CrossLayerBuffers {
        let layers = 24, n = 64, width = 1024
        let xs: [UnsafeMutableBufferPointer<Float>]
        let ys: [[UnsafeMutableBufferPointer<Float>]]
        let dys: [[UnsafeMutableBufferPointer<Float>]]
        let dx: UnsafeMutableBufferPointer<Float>

        init(modules: Int) {
            xs = (0..<24).map { Bench.buffer(Bench.random(64 * 1024, scale: 1, seed: UInt64(10 + $0))) }
            ys = (0..<24).map { _ in (0..<modules).map { _ in Bench.buffer([Float](repeating: 0, count: 64 * 1024)) } }
            dys = (0..<24).map { l in (0..<modules).map { m in Bench.buffer(Bench.random(64 * 1024, scale: 1, seed: UInt64(100 + 4 * l + m))) } }
            dx = Bench.buffer([Float](repeating: 0, count: 64 * 1024))
        }

        func release() {
            xs.forEach { $0.deallocate() }
            ys.joined().forEach { $0.deallocate() }
            dys.joined().forEach { $0.deallocate() }
            dx.deallocate()
        }
    }

    /// Forward of every pair of `adapter`, fused per layer.
    static func forwardAll<A: GeneratedAdapter>(_ adapter: A, _ b: CrossLayerBuffers) throws {
        let modules = Array(A.Module.allCases)
        for l in 0..<b.layers {
            try adapter.forward(layer: l, modules: modules, x: UnsafeBufferPointer(b.xs[l]), rows: b.n, outputs: b.ys[l])
        }
    }

    /// Forward, then the fused backward of every layer (the VJP of its fused
    /// forward) and finishBackward.
    static func forwardBackwardAll<A: GeneratedAdapter>(_ adapter: A, _ b: CrossLayerBuffers) throws {
        try forwardAll(adapter, b)
        try backwardAll(adapter, b)
        adapter.finishBackward()
    }

    /// The fused backward of every layer alone (no forward, no finishBackward).
    static func backwardAll<A: GeneratedAdapter>(_ adapter: A, _ b: CrossLayerBuffers) throws {
        let modules = Array(A.Module.allCases)
        for l in 0..<b.layers {
            try adapter.backward(layer: l, modules: modules, x: UnsafeBufferPointer(b.xs[l]),
                                 dys: b.dys[l].map { UnsafeBufferPointer($0) }, rows: b.n, dx: b.dx)
        }
    }

    static func makeAdapter<A: GeneratedAdapter>(_ type: A.Type, threads: Int) -> A {
        let adapter = A(threads: threads)
        _ = adapter.parameters.update(fromContentsOf: random(A.parameterCount, scale: 0.3, seed: 5))
        adapter.prepare()
        return adapter
    }

    /// FLOPs of a cross-layer forward at its cheapest contraction, with
    /// prepared state folded as prepare folds it (n 64, L 24, M 4, D 1024):
    /// - tt-xlayer: the in-cores make one shared A [ρ 8, 1024], so per layer
    ///   z = x·Aᵀ (2·n·8·D) and per pair y += z·B[l,m]ᵀ (2·n·8·D).
    /// - lora-xlayer: per pair z = x·Aᵀ, y += z·Bᵀ: 2·n·8·2D (no sharing: each
    ///   pair has its own A).
    /// - lotr-xlayer: per layer z = x·U_in (2·n·16·D); per pair the core folds
    ///   into the output factor (B = U_out·Cᵀ, prepared): y += z·Bᵀ (2·n·16·D).
    /// - cp-xlayer: per layer z = x·F_in (2·n·64·D); per pair diag(F_l ⊙ F_m)
    ///   folds into F_out (prepared): y += z·Bᵀ (2·n·64·D). 1.0 GFLOP.
    static let crossLayerFlops = ["tt-xlayer": 2 * 64 * (24 * 8 * 1024 + 96 * 8 * 1024), "lora-xlayer": 2 * 64 * 96 * 8 * 2048,
                                  "lotr-xlayer": 2 * 64 * (24 * 16 * 1024 + 96 * 16 * 1024),
                                  "cp-xlayer": 2 * 64 * (24 * 64 * 1024 + 96 * 64 * 1024)]

    /// The memory floor of a cross-layer forward: each layer's x read once
    /// (L·n·D floats), each pair's y read and written once (L·M·n·D, `y +=`),
    /// the stored factors read once (`parameters` floats: the definition needs
    /// no more; prepared copies are the kernels' choice). x and y are the
    /// case's own buffers.
    static func crossLayerFloor(_ b: CrossLayerBuffers, parameters: Int, flops: Int, threads: Int) -> CaseFloor {
        CaseFloor(reading: [parameters], sharing: .init(reading: b.xs.map { UnsafeBufferPointer($0) }, accumulating: Array(b.ys.joined())),
                  flops: flops, threads: threads)
    }

    /// `tt-xlayer`, `lora-xlayer`, `lotr-xlayer`, `cp-xlayer`: forward of all pairs,
    /// alternated with each other and with their floors; then each structure's prepare.
    static func crossLayer(_ cases: [String], threads: Int) throws {
        let b = CrossLayerBuffers(modules: 4)
        defer { b.release() }
        let tt = makeAdapter(BenchTTXLayerAdapter.self, threads: threads)
        let lora = makeAdapter(BenchLoraXLayerAdapter.self, threads: threads)
        let lotr = makeAdapter(BenchLoTRXLayerAdapter.self, threads: threads)
        let cp = makeAdapter(BenchCpXLayerAdapter.self, threads: threads)
        let all: [(String, () throws -> Void, () -> Void, Int)] = [
            ("tt-xlayer", { try forwardAll(tt, b) }, { tt.prepare() }, BenchTTXLayerAdapter.parameterCount),
            ("lora-xlayer", { try forwardAll(lora, b) }, { lora.prepare() }, BenchLoraXLayerAdapter.parameterCount),
            ("lotr-xlayer", { try forwardAll(lotr, b) }, { lotr.prepare() }, BenchLoTRXLayerAdapter.parameterCount),
            ("cp-xlayer", { try forwardAll(cp, b) }, { cp.prepare() }, BenchCpXLayerAdapter.parameterCount),
        ]
        let chosen = all.filter { cases.contains($0.0) }
        let floors = chosen.map { crossLayerFloor(b, parameters: $0.3, flops: crossLayerFlops[$0.0]!, threads: threads) }
        let forward = try timeWithFloors(chosen.map(\.1), floors: floors, repeats: 30)
        for (i, c) in chosen.enumerated() {
            emit([("case", c.0), ("variant", "forward"), ("n", 64), ("impl", "adaptc"), ("threads", threads),
                  ("seconds", forward[i]), ("flops", floors[i].flops), ("parameters", c.3)], floor: floors[i])
            emit(floors[i].row(case: c.0, n: 64))
        }
        let prepare = try timeAlternating(chosen.map { c in { c.2() } }, repeats: 30)
        for (i, c) in chosen.enumerated() {
            // Prepare reads the parameters and writes the prepared state: no floor of its own (not a §8 target).
            emit([("case", c.0), ("variant", "prepare"), ("n", 64), ("impl", "adaptc"), ("threads", threads),
                  ("seconds", prepare[i]), ("flops", 0), ("bytes", 4 * c.3)])
        }
    }

    /// The floor of forward+backward of all pairs: the forward's bytes, plus
    /// each pair's dy read (L·M·n·D), the one dx the bench reuses read and
    /// written by every layer (24 × n·D, `dx +=`), and the parameters'
    /// gradients read and written once (`gradients +=`). FLOPs: the backward of
    /// each product z = x·Aᵀ, y += z·Bᵀ is two products of the same size
    /// (dz = dy·B and dB = dyᵀ·z; dx += dz·A and dA = dzᵀ·x, with dz summed
    /// over a layer's modules first where A is shared), so 3× the forward's.
    static func forwardBackwardFloor(_ b: CrossLayerBuffers, parameters: Int, forwardFlops: Int, threads: Int) -> CaseFloor {
        CaseFloor(reading: [parameters], accumulating: [parameters],
                  sharing: .init(reading: b.xs.map { UnsafeBufferPointer($0) } + b.dys.joined().map { UnsafeBufferPointer($0) },
                                 accumulating: Array(b.ys.joined()) + [UnsafeMutableBufferPointer<Float>](repeating: b.dx, count: b.layers)),
                  flops: 3 * forwardFlops, threads: threads)
    }

    /// `backward`: forward+backward (all pairs, then finishBackward) against forward, tt-xlayer and lora-xlayer,
    /// each with its floor.
    static func backwardCase(threads: Int) throws {
        let b = CrossLayerBuffers(modules: 4)
        defer { b.release() }
        let tt = makeAdapter(BenchTTXLayerAdapter.self, threads: threads)
        let lora = makeAdapter(BenchLoraXLayerAdapter.self, threads: threads)
        let (ttParameters, loraParameters) = (BenchTTXLayerAdapter.parameterCount, BenchLoraXLayerAdapter.parameterCount)
        let (ttFlops, loraFlops) = (crossLayerFlops["tt-xlayer"]!, crossLayerFlops["lora-xlayer"]!)
        let floors = [crossLayerFloor(b, parameters: ttParameters, flops: ttFlops, threads: threads),
                      forwardBackwardFloor(b, parameters: ttParameters, forwardFlops: ttFlops, threads: threads),
                      crossLayerFloor(b, parameters: loraParameters, flops: loraFlops, threads: threads),
                      forwardBackwardFloor(b, parameters: loraParameters, forwardFlops: loraFlops, threads: threads)]
        let times = try timeWithFloors([{ try forwardAll(tt, b) }, { try forwardBackwardAll(tt, b) },
                                        { try forwardAll(lora, b) }, { try forwardBackwardAll(lora, b) },
                                        { try backwardAll(tt, b) }, { tt.finishBackward() }], floors: floors, repeats: 20)
        let base: [(String, Any)] = [("case", "backward"), ("n", 64), ("impl", "adaptc"), ("threads", threads)]
        emit(base + [("variant", "lora forward"), ("seconds", times[2]), ("flops", loraFlops)], floor: floors[2])
        emit(base + [("variant", "lora forward+backward"), ("seconds", times[3]), ("flops", 3 * loraFlops),
                     ("ratio", times[3] / times[2])], floor: floors[3])
        emit(floors[3].row(case: "backward", n: 64, of: "lora forward+backward"))
        emit(base + [("variant", "forward"), ("seconds", times[0]), ("flops", ttFlops)], floor: floors[0])
        emit(base + [("variant", "forward+backward"), ("seconds", times[1]), ("flops", 3 * ttFlops),
                     ("ratio", times[1] / times[0])], floor: floors[1])
        emit(floors[1].row(case: "backward", n: 64, of: "forward+backward"))
        // Where forward+backward's time goes: the layers' backward and finishBackward, each timed alone.
        // (vs_floor against the forward+backward floor: the part of it each takes.)
        emit(base + [("variant", "backward"), ("seconds", times[4]), ("flops", 2 * ttFlops),
                     ("ratio", times[4] / times[0])], floor: floors[1])
        emit(base + [("variant", "finishBackward"), ("seconds", times[5]), ("flops", 0), ("bytes", 0),
                     ("ratio", times[5] / times[0])])
    }

    /// `scaling`: tt-xlayer (memory-bound) and cp-xlayer (compute-bound)
    /// forward at each of `threadCounts` (1 and 2 by default; `--scaling-threads
    /// 1,2,4,8,16` on a machine with more cores, Tools/device-scaling),
    /// alternated with their floors at each count; `speedup` and the floors' own
    /// speedups are against the first count. DESIGN §8 holds tt-xlayer's 1 → 2
    /// speedup to the streaming pass's own ratio, cp-xlayer's to 1.85×, and
    /// cp-xlayer at 16 threads to ≥ 12× one thread.
    static func scalingCase(threadCounts: [Int] = [1, 2]) throws {
        let b = CrossLayerBuffers(modules: 4)
        defer { b.release() }
        var variants: [() throws -> Void] = [], floors: [CaseFloor] = []
        var names: [String] = []
        for (name, parameters) in [("tt-xlayer", BenchTTXLayerAdapter.parameterCount), ("cp-xlayer", BenchCpXLayerAdapter.parameterCount)] {
            for threads in threadCounts {
                if name == "tt-xlayer" {
                    let adapter = makeAdapter(BenchTTXLayerAdapter.self, threads: threads)
                    variants.append { try forwardAll(adapter, b) }
                } else {
                    let adapter = makeAdapter(BenchCpXLayerAdapter.self, threads: threads)
                    variants.append { try forwardAll(adapter, b) }
                }
                floors.append(crossLayerFloor(b, parameters: parameters, flops: crossLayerFlops[name]!, threads: threads))
                names.append(name)
            }
        }
        let times = try timeWithFloors(variants, floors: floors, repeats: 30)
        let counts = threadCounts.count
        for first in stride(from: 0, to: times.count, by: counts) {
            let one = floors[first]
            for (k, threads) in threadCounts.enumerated() {
                let i = first + k, floor = floors[i]
                var row: [(String, Any)] = [("case", "scaling"), ("n", 64), ("impl", "adaptc"),
                                            ("variant", "\(names[i]) \(threads) thread\(threads == 1 ? "" : "s")"), ("threads", threads),
                                            ("seconds", times[i]), ("flops", floor.flops)]
                if k > 0 {
                    row += [("speedup", times[first] / times[i]), ("stream_speedup", one.memorySeconds / floor.memorySeconds),
                            ("fma_speedup", one.computeSeconds / floor.computeSeconds), ("floor_speedup", one.seconds / floor.seconds),
                            ("against_threads", threadCounts[0])]
                }
                emit(row, floor: floor)
            }
        }
    }
}
