import AdaptRuntime
import Foundation
import GeneratedAdapters

extension Bench {
    /// `decode` (DESIGN §8): n = 1, LoRA r 16 on the seven maps of one
    /// LLaMA-7B-shaped layer (hidden 4096, feed-forward 11008), each group of
    /// modules that reads one input run as one layer-fused call: q/k/v on the
    /// attention input, o on its own, gate/up on the MLP input, down on its own.
    /// Memory floor: A and B read once (the parameters), the four inputs read
    /// once, the seven outputs read and written once (`y +=`); at n = 1 the
    /// 2.5 MFLOP are far below it. Target: ≤ 1.3× the floor.
    static func decode(threads: Int) throws {
        typealias Adapter = BenchDecodeAdapter
        let adapter = makeAdapter(Adapter.self, threads: threads)
        let (hidden, feedForward) = (4096, 11008)
        let xs = [hidden, hidden, hidden, feedForward].enumerated().map { buffer(random($1, scale: 1, seed: UInt64(40 + $0))) }
        let groups: [[Adapter.Module]] = [[.q, .k, .v], [.o], [.gate, .up], [.down]]
        let ys = groups.map { modules in modules.map { buffer([Float](repeating: 0, count: Adapter.shape(of: $0).out)) } }
        defer { xs.forEach { $0.deallocate() }; ys.joined().forEach { $0.deallocate() } }
        let forward = {
            for (g, modules) in groups.enumerated() {
                try adapter.forward(layer: 0, modules: modules, x: UnsafeBufferPointer(xs[g]), rows: 1, outputs: ys[g])
            }
        }
        let flops = 2 * Adapter.parameterCount
        let floor = CaseFloor(reading: [Adapter.parameterCount],
                              sharing: .init(reading: xs.map { UnsafeBufferPointer($0) }, accumulating: Array(ys.joined())),
                              flops: flops, threads: threads)
        let times = try timeWithFloors([forward], floors: [floor], repeats: 400, warmup: 20)
        emit([("case", "decode"), ("variant", "forward"), ("n", 1), ("impl", "adaptc"), ("threads", threads),
              ("seconds", times[0]), ("flops", flops), ("parameters", Adapter.parameterCount)], floor: floor)
        emit(floor.row(case: "decode", n: 1))
    }
}
