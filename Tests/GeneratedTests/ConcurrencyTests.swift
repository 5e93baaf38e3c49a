import AdaptRuntime
@testable import AdaptcCore
import AdaptTestSupport
import Foundation
import GeneratedAdapters
import XCTest

/// The determinism and concurrency contract of adapters (README, "Development:
/// hardening"; AdaptRuntime's docs): results are bitwise identical for any
/// `threads` — parallel products are cut into `FixedBlocks` chosen from the
/// shape alone, never from the thread count, and never split a sum — and
/// distinct instances may be used from different threads at once.
/// Tools/sanitize thread runs these under TSan.
final class ConcurrencyTests: XCTestCase {
    /// The widths compared: 3 cuts an even split unevenly (before FixedBlocks,
    /// its tail blocks went through other OpenBLAS micro-kernels and differed).
    static let widths = [1, 2, 3, 4]

    /// q/k/v read one x (`model.inputs`): forwardLayer/backwardLayer run the fused
    /// program; sizes large enough that the GEMMs pass Kernels.parallelThreshold.
    static let fusedLoRASpec = """
        adaptc: 1
        name: Fused
        model:
          layers: 2
          modules: {q: [1024, 1024], k: [512, 1024], v: [1024, 1024]}
          inputs: {attention: [q, k, v]}
        adapters:
          - {name: attn, structure: lora, modules: [q, k, v], rank: 16, alpha: 32}
        """

    /// A tensor-train across layers: prepared state, its gradients, finishBackward's reductions.
    static let tensorTrainSpec = """
        adaptc: 1
        name: FusedTT
        model:
          layers: 2
          modules: {q: [1024, 1024], k: [1024, 1024], v: [1024, 1024], o: [1024, 1024]}
          inputs: {block: [q, k, v, o]}
        adapters:
          - name: tt
            structure: tensor-train
            modules: [q, k, v, o]
            factor: {out: [4, 8, 4, 8], in: [4, 8, 4, 8]}
            rank: 8
            alpha: 8
        """

    /// Everything one training step produces, for comparing runs bit for bit.
    private struct Step: Equatable, Sendable {
        var outputs: [[Float]] = []
        var inputGradients: [[Float]] = []
        var gradients: [Float] = []
        var deltas: [[Float]] = []
    }

    /// Per layer: the fused forward and backward of all modules, then each
    /// module's own forward, backward and ΔW; finally finishBackward and the gradients.
    private func interpreterStep(_ spec: String, threads: Int, rows n: Int = 512) throws -> Step {
        let checked = try SpecLoader.check(source: spec, path: "fused.adapt.yaml")
        let plan = try XCTUnwrap(Planner.plan(checked).0)
        let interpreter = PlanInterpreter(plan: plan, threads: threads)
        var random = TestRandom(seed: 3)
        for i in 0..<plan.parameterCount { interpreter.storage.parameters[i] = random.uniform(0.5) }
        interpreter.prepare()
        let modules = checked.spec.model.modules.map(\.name), outs = checked.spec.model.modules.map(\.outFeatures)
        let x = random.floats(n * 1024, bound: 1)
        var step = Step()
        for layer in 0..<checked.spec.model.layers {
            var ys = outs.map { [Float](repeating: 0, count: n * $0) }
            let dys = outs.map { random.floats(n * $0, bound: 1) }
            var dx = [Float](repeating: 0, count: n * 1024)
            try x.withUnsafeBufferPointer { x in
                let outputs = ys.indices.map { i in ys[i].withUnsafeMutableBufferPointer { $0 } }
                try interpreter.forwardLayer(layer: layer, modules: modules, x: x, rows: n, outputs: outputs)
                let gradients = dys.map { $0.withUnsafeBufferPointer { $0 } }
                try dx.withUnsafeMutableBufferPointer { dx in
                    try interpreter.backwardLayer(layer: layer, modules: modules, x: x, dys: gradients, rows: n, dx: dx)
                }
            }
            step.outputs += ys
            step.inputGradients.append(dx)
            for (module, (out, dy)) in zip(modules, zip(outs, dys)) {
                var y = [Float](repeating: 0, count: n * out), dx = [Float](repeating: 0, count: n * 1024)
                var delta = [Float](repeating: 0, count: out * 1024)
                try x.withUnsafeBufferPointer { x in
                    try y.withUnsafeMutableBufferPointer { try interpreter.forward(layer: layer, module: module, x: x, rows: n, y: $0) }
                    try dy.withUnsafeBufferPointer { dy in
                        try dx.withUnsafeMutableBufferPointer { dx in
                            try interpreter.backward(layer: layer, module: module, x: x, dy: dy, rows: n, dx: dx)
                        }
                    }
                }
                try delta.withUnsafeMutableBufferPointer { try interpreter.materialize(layer: layer, module: module, into: $0) }
                step.outputs.append(y)
                step.inputGradients.append(dx)
                step.deltas.append(delta)
            }
        }
        interpreter.finishBackward()
        step.gradients = Array(interpreter.storage.gradients)
        return step
    }

    /// The same calls on a generated adapter: fused forward/backward where the
    /// type has them (`model.inputs`), each module's own, finishBackward, ΔW.
    private static func generatedStep<Adapter: GeneratedAdapter>(
        _ adapter: Adapter, seed: UInt64, rows n: Int = 128, layers: Range<Int> = 0..<1
    ) throws -> Step {
        var random = TestRandom(seed: seed)
        for i in 0..<Adapter.parameterCount { adapter.parameters[i] = random.uniform(0.5) }
        adapter.storage.zeroGradients()
        adapter.prepare()
        let modules = Array(Adapter.Module.allCases), inputs = Adapter.shape(of: modules[0]).in
        let x = random.floats(n * inputs, bound: 1)
        var step = Step()
        for layer in layers {
            var ys = modules.map { [Float](repeating: 0, count: n * Adapter.shape(of: $0).out) }
            let dys = modules.map { random.floats(n * Adapter.shape(of: $0).out, bound: 1) }
            var dx = [Float](repeating: 0, count: n * inputs)
            try x.withUnsafeBufferPointer { x in
                let outputs = ys.indices.map { i in ys[i].withUnsafeMutableBufferPointer { $0 } }
                try adapter.forward(layer: layer, modules: modules, x: x, rows: n, outputs: outputs)
                let gradients = dys.map { $0.withUnsafeBufferPointer { $0 } }
                try dx.withUnsafeMutableBufferPointer { dx in
                    try adapter.backward(layer: layer, modules: modules, x: x, dys: gradients, rows: n, dx: dx)
                }
            }
            step.outputs += ys
            step.inputGradients.append(dx)
            for (module, dy) in zip(modules, dys) {
                step.outputs.append(try adapter.forward(layer: layer, module: module, x: x, rows: n))
                step.inputGradients.append(try adapter.backward(layer: layer, module: module, x: x, dy: dy, rows: n))
                step.deltas.append(try adapter.materialize(layer: layer, module: module))
            }
        }
        adapter.finishBackward()
        step.gradients = Array(adapter.gradients)
        return step
    }

    func testInterpreterResultsAreIdenticalForEveryThreadCount() throws {
        for (name, spec) in [("lora", Self.fusedLoRASpec), ("tensor-train", Self.tensorTrainSpec)] {
            let reference = try interpreterStep(spec, threads: 1)
            XCTAssertTrue(reference.outputs.allSatisfy { $0.contains { $0 != 0 } }, name)
            XCTAssertTrue(reference.gradients.contains { $0 != 0 }, name)
            for threads in Self.widths.dropFirst() {
                XCTAssertTrue(try interpreterStep(spec, threads: threads) == reference, "\(name): threads \(threads) differs from threads 1")
            }
        }
    }

    func testGeneratedResultsAreIdenticalForEveryThreadCount() throws {
        func compare<Adapter: GeneratedAdapter>(_ make: (Int) -> Adapter, rows: Int, layers: Range<Int>) throws {
            let reference = try Self.generatedStep(make(1), seed: 5, rows: rows, layers: layers)
            XCTAssertTrue(reference.outputs.allSatisfy { $0.contains { $0 != 0 } }, Adapter.specName)
            for threads in Self.widths.dropFirst() {
                XCTAssertTrue(try Self.generatedStep(make(threads), seed: 5, rows: rows, layers: layers) == reference,
                              "\(Adapter.specName): threads \(threads) differs from threads 1")
            }
        }
        // One 4096² pair: every GEMM splits (rows, columns and the materialize product).
        try compare(BenchLoraAdapter.init(threads:), rows: 128, layers: 0..<1)
        // Fused q/k/v/o programs, and a tensor-train's prepare and finishBackward.
        try compare(BenchLoraXLayerAdapter.init(threads:), rows: 512, layers: 0..<2)
        try compare(BenchTTXLayerAdapter.init(threads:), rows: 512, layers: 0..<2)
    }

    func testDistinctInstancesMayRunConcurrently() throws {
        let seeds: [UInt64] = [7, 8]
        let expected = try seeds.map { try Self.generatedStep(BenchLoraAdapter(threads: 1), seed: $0) }
        // The contract under test: each instance is used by one thread, several at once.
        // Widths 2 and 4 give each instance its own TBB arena: callers sharing one
        // arena are handed to each other's workers inside libtbb, which ThreadSanitizer
        // (Tools/sanitize thread) cannot see into and reports as a race in TBB's headers.
        let adapters = Unchecked(seeds.indices.map { BenchLoraAdapter(threads: 2 + 2 * $0) })
        let results = ConcurrentResults<Step>(count: seeds.count)
        DispatchQueue.concurrentPerform(iterations: seeds.count) { i in
            results.set(i, Result { try Self.generatedStep(adapters.value[i], seed: seeds[i]) })
        }
        for i in seeds.indices {
            XCTAssertTrue(try results.get(i) == expected[i], "instance \(i) run concurrently differs")
        }
    }
}

/// Values handed to other threads on purpose (each adapter to exactly one thread).
private struct Unchecked<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}

/// Results written from concurrent iterations, one slot each.
private final class ConcurrentResults<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var slots: [Result<T, Error>?]

    init(count: Int) { slots = Array(repeating: nil, count: count) }

    func set(_ i: Int, _ result: Result<T, Error>) {
        lock.lock()
        slots[i] = result
        lock.unlock()
    }

    func get(_ i: Int) throws -> T {
        lock.lock()
        defer { lock.unlock() }
        return try slots[i]!.get()
    }
}
