// Compiled into both modules of Tools/check-generated-bits (the generated files
// of two commits): runs every entry point of every adapter on the same inputs
// and prints a digest of the bits of everything it wrote.
import AdaptRuntime

/// Deterministic values in [-1, 1) (xorshift), the same in both builds.
struct Values {
    var state: UInt64
    mutating func next() -> Float {
        state ^= state << 13; state ^= state >> 7; state ^= state << 17
        return Float(Int64(state >> 40) - (1 << 23)) / Float(1 << 23)
    }
    mutating func array(_ count: Int) -> [Float] { (0..<count).map { _ in next() } }
}

/// FNV-1a over bit patterns.
struct Digest {
    var hash: UInt64 = 0xcbf29ce484222325
    var floats = 0
    mutating func add(_ values: some Sequence<Float>) {
        for v in values {
            hash = (hash ^ UInt64(v.bitPattern)) &* 0x100000001b3
            floats += 1
        }
    }
}

func digest<A: GeneratedAdapter>(_ type: A.Type, threads: Int) -> [String] {
    var lines: [String] = []
    var values = Values(state: 0x9e3779b97f4a7c15)
    let adapter = A(threads: threads)
    let parameters = values.array(A.parameterCount)
    for (i, v) in parameters.enumerated() { adapter.parameters[i] = v * 0.1 }
    adapter.prepare()
    for layer in 0..<80 {
        var calls = 0
        var d = Digest()
        for n in [1, 5, 64] {
            var pairModules: [A.Module] = []
            for module in A.Module.allCases {
                let shape = A.shape(of: module)
                let x = values.array(n * shape.in), y0 = values.array(n * shape.out), dy = values.array(n * shape.out)
                guard let y = try? adapter.forward(layer: layer, module: module, x: x, rows: n, y: y0) else { continue }
                pairModules.append(module)
                d.add(y)
                if let dx = try? adapter.backward(layer: layer, module: module, x: x, dy: dy, rows: n) { d.add(dx) }
                if n == 1, let delta = try? adapter.materialize(layer: layer, module: module) { d.add(delta) }
                calls += 1
            }
            // The fused calls over every module of the layer with an adapter that reads one input width.
            guard let first = pairModules.first else { continue }
            let width = A.shape(of: first).in
            let modules = pairModules.filter { A.shape(of: $0).in == width }
            let x = buffer(values.array(n * width))
            let outputs = modules.map { buffer(values.array(n * A.shape(of: $0).out)) }
            let dys = modules.map { buffer(values.array(n * A.shape(of: $0).out)) }
            let dx = buffer([Float](repeating: 0, count: n * width))
            if (try? adapter.forward(layer: layer, modules: modules, x: UnsafeBufferPointer(x), rows: n, outputs: outputs)) != nil { calls += 1 }
            if (try? adapter.backward(layer: layer, modules: modules, x: UnsafeBufferPointer(x), dys: dys.map { UnsafeBufferPointer($0) },
                                      rows: n, dx: dx)) != nil { calls += 1 }
            for o in outputs { d.add(o) }
            d.add(dx)
            for b in [x, dx] + outputs + dys { b.deallocate() }
        }
        adapter.finishBackward()
        d.add(UnsafeBufferPointer(adapter.gradients))
        if calls > 0 { lines.append("\(A.specName) layer \(layer): \(calls) calls, \(d.floats) floats, digest \(String(d.hash, radix: 16))") }
    }
    return lines
}

func buffer(_ values: [Float]) -> UnsafeMutableBufferPointer<Float> {
    let b = UnsafeMutableBufferPointer<Float>.allocate(capacity: values.count)
    _ = b.initialize(from: values)
    return b
}
