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

    /// `tt-xlayer`, `lora-xlayer`, `lotr-xlayer`, `cp-xlayer`: forward of all pairs,
    /// alternated so drift hits all alike; then each structure's prepare.
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
        let forward = try timeAlternating(chosen.map(\.1), repeats: 30)
        let flops = ["tt-xlayer": 2 * 64 * (24 * 8 * 1024 + 96 * 8 * 1024), "lora-xlayer": 2 * 64 * 96 * 8 * 2048,
                     "lotr-xlayer": 2 * 64 * (24 * 16 * 1024 + 96 * (16 * 16 + 16 * 1024)),
                     "cp-xlayer": 2 * 64 * (24 * 64 * 1024 + 96 * (64 + 64 * 1024))]
        for (i, c) in chosen.enumerated() {
            emit([("case", c.0), ("variant", "forward"), ("n", 64), ("impl", "adaptc"), ("threads", threads),
                  ("seconds", forward[i]), ("flops", flops[c.0] ?? 0), ("parameters", c.3)])
        }
        let prepare = try timeAlternating(chosen.map { c in { c.2() } }, repeats: 30)
        for (i, c) in chosen.enumerated() {
            emit([("case", c.0), ("variant", "prepare"), ("n", 64), ("impl", "adaptc"), ("threads", threads),
                  ("seconds", prepare[i]), ("flops", 0)])
        }
    }

    /// `backward`: forward+backward (all pairs, then finishBackward) against forward, tt-xlayer.
    static func backwardCase(threads: Int) throws {
        let b = CrossLayerBuffers(modules: 4)
        defer { b.release() }
        let tt = makeAdapter(BenchTTXLayerAdapter.self, threads: threads)
        let lora = makeAdapter(BenchLoraXLayerAdapter.self, threads: threads)
        let times = try timeAlternating([{ try forwardAll(tt, b) }, { try forwardBackwardAll(tt, b) },
                                         { try forwardAll(lora, b) }, { try forwardBackwardAll(lora, b) },
                                         { try backwardAll(tt, b) }, { tt.finishBackward() }], repeats: 20)
        emit([("case", "backward"), ("variant", "lora forward+backward"), ("n", 64), ("impl", "adaptc"), ("threads", threads),
              ("seconds", times[3]), ("flops", 0), ("ratio", times[3] / times[2])])
        emit([("case", "backward"), ("variant", "forward"), ("n", 64), ("impl", "adaptc"), ("threads", threads),
              ("seconds", times[0]), ("flops", 0)])
        emit([("case", "backward"), ("variant", "forward+backward"), ("n", 64), ("impl", "adaptc"), ("threads", threads),
              ("seconds", times[1]), ("flops", 0), ("ratio", times[1] / times[0])])
        // Where forward+backward's time goes: the layers' backward and finishBackward, each timed alone.
        emit([("case", "backward"), ("variant", "backward"), ("n", 64), ("impl", "adaptc"), ("threads", threads),
              ("seconds", times[4]), ("flops", 0), ("ratio", times[4] / times[0])])
        emit([("case", "backward"), ("variant", "finishBackward"), ("n", 64), ("impl", "adaptc"), ("threads", threads),
              ("seconds", times[5]), ("flops", 0), ("ratio", times[5] / times[0])])
    }

    /// `scaling`: tt-xlayer forward at 1 and at 2 threads, alternated.
    static func scalingCase() throws {
        let b = CrossLayerBuffers(modules: 4)
        defer { b.release() }
        let one = makeAdapter(BenchTTXLayerAdapter.self, threads: 1)
        let two = makeAdapter(BenchTTXLayerAdapter.self, threads: 2)
        let times = try timeAlternating([{ try forwardAll(one, b) }, { try forwardAll(two, b) }], repeats: 30)
        emit([("case", "scaling"), ("variant", "1 thread"), ("n", 64), ("impl", "adaptc"), ("threads", 1),
              ("seconds", times[0]), ("flops", 0)])
        emit([("case", "scaling"), ("variant", "2 threads"), ("n", 64), ("impl", "adaptc"), ("threads", 2),
              ("seconds", times[1]), ("flops", 0), ("speedup", times[0] / times[1])])
    }
}
