import AdaptRuntime
import AdaptTestSupport
import XCTest

/// DoRAPair against PEFT's own use_dora=True (Tests/Fixtures/peft/dora_qv) and a float64 naive reference.
final class DoRAPairTests: XCTestCase {
    private func relative(_ a: [Float], _ b: [Float]) -> Double {
        var num = 0.0, den = 0.0
        for (u, v) in zip(a, b) { num = max(num, abs(Double(u) - Double(v))); den = max(den, abs(Double(v))) }
        return num / den
    }

    func testAgainstPEFTFixture() throws {
        let f = { (name: String) in try SafetensorsFile.read(path: PEFTFixtures.file(name, in: "dora_qv")) }
        let adapter = try f("adapter_model.safetensors"), base = try f("base.safetensors")
        let inputs = try f("inputs.safetensors"), dys = try f("dy.safetensors"), delta = try f("delta.safetensors")
        let grads = try f("grads.safetensors"), merged = try f("merged.safetensors")
        let (n, d, r, s): (Int, Int, Int, Float) = (3, 8, 2, 2)
        for layer in 0..<2 {
            for module in ["query", "value"] {
                let p = "encoder.layer.\(layer).attention.self.\(module)"
                let w = try base.floats(p + ".weight")
                let a = try adapter.floats("base_model.model.\(p).lora_A.weight")
                let b = try adapter.floats("base_model.model.\(p).lora_B.weight")
                let m = try adapter.floats("base_model.model.\(p).lora_magnitude_vector")
                let x = try inputs.floats(p), dy = try dys.floats(p)
                let norms = DoRAPair.rowNorms(w: w, a: a, b: b, scale: s, out: d, in: d, rank: r)
                var baseOut = [Float](repeating: 0, count: n * d)   // x·Wᵀ, the caller's base output
                for row in 0..<n { for o in 0..<d { var acc = 0.0
                    for i in 0..<d { acc += Double(x[row * d + i]) * Double(w[o * d + i]) }
                    baseOut[row * d + o] = Float(acc) } }
                var y = baseOut
                DoRAPair.forward(x: x, y: &y, a: a, b: b, magnitude: m, norms: norms, scale: s, rows: n, out: d, in: d, rank: r)
                let own = zip(y, baseOut).map { $0 - $1 }   // x·(W' − W)ᵀ
                XCTAssertLessThan(relative(own, try delta.floats(p)), 1e-5, p)
                let g = DoRAPair.backward(x: x, dy: dy, baseOutput: baseOut, w: w, a: a, b: b, magnitude: m, norms: norms,
                                          scale: s, rows: n, out: d, in: d, rank: r)
                XCTAssertLessThan(relative(g.dA, try grads.floats(p + ".dA")), 1e-5, p)
                XCTAssertLessThan(relative(g.dB, try grads.floats(p + ".dB")), 1e-5, p)
                XCTAssertLessThan(relative(g.dm, try grads.floats(p + ".dm")), 1e-5, p)
                XCTAssertLessThan(relative(g.dx, try grads.floats(p + ".dx")), 1e-5, p)
                let wm = DoRAPair.merge(w: w, a: a, b: b, magnitude: m, norms: norms, scale: s, out: d, in: d, rank: r)
                XCTAssertLessThan(relative(wm, try merged.floats(p + ".weight")), 1e-5, p)
                let back = DoRAPair.unmerge(merged: wm, a: a, b: b, magnitude: m, norms: norms, scale: s, out: d, in: d, rank: r)
                XCTAssertLessThan(relative(back, w), 1e-5, p)
            }
        }
    }

    /// Row norms against forming V = W + s·B·A in float64; dm against central differences with the norm held.
    func testNormsAndMagnitudeGradient() {
        var rng = TestRandom(seed: 2929)
        let (n, out, inDim, r): (Int, Int, Int, Int) = (4, 5, 7, 3)
        let s: Float = 0.75
        let rand = { (c: Int) in rng.floats(c) }
        let w = rand(out * inDim), a = rand(r * inDim), b = rand(out * r), x = rand(n * inDim), dy = rand(n * out)
        let m = rand(out).map { $0 + 2 }
        let norms = DoRAPair.rowNorms(w: w, a: a, b: b, scale: s, out: out, in: inDim, rank: r)
        for o in 0..<out {
            var sq = 0.0
            for i in 0..<inDim {
                var v = Double(w[o * inDim + i])
                for k in 0..<r { v += Double(s) * Double(b[o * r + k]) * Double(a[k * inDim + i]) }
                sq += v * v
            }
            XCTAssertEqual(Double(norms[o]), sq.squareRoot(), accuracy: 1e-5 * sq.squareRoot())
        }
        var base = [Float](repeating: 0, count: n * out)
        for row in 0..<n { for o in 0..<out { var acc = 0.0
            for i in 0..<inDim { acc += Double(x[row * inDim + i]) * Double(w[o * inDim + i]) }
            base[row * out + o] = Float(acc) } }
        let g = DoRAPair.backward(x: x, dy: dy, baseOutput: base, w: w, a: a, b: b, magnitude: m, norms: norms,
                                  scale: s, rows: n, out: out, in: inDim, rank: r)
        let loss = { (mm: [Float]) -> Double in
            var y = base
            DoRAPair.forward(x: x, y: &y, a: a, b: b, magnitude: mm, norms: norms, scale: s, rows: n, out: out, in: inDim, rank: r)
            return zip(y, dy).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        }
        let h: Float = 1e-2   // the loss is linear in m: central differences are exact up to rounding
        for o in 0..<out {
            var up = m, down = m
            up[o] += h; down[o] -= h
            let fd = (loss(up) - loss(down)) / Double(2 * h)
            XCTAssertEqual(Double(g.dm[o]), fd, accuracy: 1e-3 * max(1, abs(fd)))
        }
    }
}
