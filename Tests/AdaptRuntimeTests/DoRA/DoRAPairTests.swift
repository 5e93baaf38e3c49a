import AdaptRuntime
import AdaptTestSupport
import XCTest

/// DoRAPair's steps (what the interpreter and the generated code both call)
/// against PEFT's own use_dora=True (Tests/Fixtures/peft/dora_qv) and the
/// float64 definition (`DoRAReference`, itself checked against PEFT here), and
/// 1 against 2 threads bit for bit on shapes that split into several blocks.
final class DoRAPairTests: XCTestCase {
    /// The runtime's steps on one pair: norms, then forward's rescaling of
    /// `x·Wᵀ + x·ΔWᵀ` (the LoRA part in float64 here, the plan's programs in
    /// the runtime), backward's dm and rescaled dy, merge and unmerge.
    private struct Steps {
        var norms: [Float], y: [Float], dy: [Float], dm: [Float], mergedChange: [Float], unmerged: [Float]
    }

    /// `xV`: x·Vᵀ when given (the thread test, whose shapes are too large for a naive product), else computed from x.
    private func steps(_ r: DoRAReference, x: [Float], dy dy0: [Float], rows n: Int, threads: Int, xV given: [Float]? = nil) -> Steps {
        var norms = [Float](repeating: 0, count: r.out)
        r.w.withUnsafeBufferPointer { w in r.a.withUnsafeBufferPointer { a in r.b.withUnsafeBufferPointer { b in
            norms.withUnsafeMutableBufferPointer {
                DoRAPair.rowNorms(w: w.baseAddress!, a: a.baseAddress!, b: b.baseAddress!, scale: Float(r.scale),
                                  out: r.out, in: r.inDim, rank: r.rank, into: $0.baseAddress!, threads: threads)
            }
        } } }
        let delta = (0..<(r.out * r.inDim)).map { k in
            Float(r.scale * (0..<r.rank).reduce(0.0) { $0 + Double(r.b[(k / r.inDim) * r.rank + $1]) * Double(r.a[$1 * r.inDim + k % r.inDim]) })
        }
        // x·Vᵀ = x·Wᵀ + x·ΔWᵀ
        let xv = given ?? (0..<(n * r.out)).map { k in
            Float((0..<r.inDim).reduce(0.0) { $0 + Double(x[(k / r.out) * r.inDim + $1]) * (Double(r.w[(k % r.out) * r.inDim + $1]) + Double(delta[(k % r.out) * r.inDim + $1])) })
        }
        var y = xv, dy = dy0, dm = [Float](repeating: 0, count: r.out)
        var change = delta, unmerged = [Float](repeating: 0, count: r.out * r.inDim)
        r.m.withUnsafeBufferPointer { m in norms.withUnsafeBufferPointer { norms in
            let (m, norms) = (m.baseAddress!, norms.baseAddress!)
            DoRAPair.rescale(&y, rows: n, magnitude: m, norms: norms, out: r.out, threads: threads)
            DoRAPair.backward(xV: xv, dy: &dy, magnitude: m, norms: norms, magnitudeGradient: &dm, rows: n, out: r.out, threads: threads)
            DoRAPair.mergedChange(&change, weight: r.w, magnitude: m, norms: norms, out: r.out, in: r.inDim, threads: threads)
            unmerged = zip(change, r.w).map { $0 + $1 }   // W'
            DoRAPair.unmerge(&unmerged, delta: delta, magnitude: m, norms: norms, out: r.out, in: r.inDim, threads: threads)
        } }
        return Steps(norms: norms, y: y, dy: dy, dm: dm, mergedChange: change, unmerged: unmerged)
    }

    func testReferenceAndStepsEqualPEFT() throws {
        let f = { (name: String) in try SafetensorsFile.read(path: PEFTFixtures.file(name, in: "dora_qv")) }
        let adapter = try f("adapter_model.safetensors"), base = try f("base.safetensors")
        let inputs = try f("inputs.safetensors"), dys = try f("dy.safetensors"), delta = try f("delta.safetensors")
        let grads = try f("grads.safetensors"), merged = try f("merged.safetensors")
        let (n, d, rank) = (3, 8, 2)
        for layer in 0..<2 {
            for module in ["query", "value"] {
                let p = "encoder.layer.\(layer).attention.self.\(module)"
                let peft = "base_model.model.\(p)."
                let r = DoRAReference(w: try base.floats(p + ".weight"), a: try adapter.floats(peft + "lora_A.weight"),
                                      b: try adapter.floats(peft + "lora_B.weight"), m: try adapter.floats(peft + "lora_magnitude_vector"),
                                      scale: 2, out: d, in: d, rank: rank)
                let x = try inputs.floats(p), dy = try dys.floats(p)
                // The reference against PEFT.
                let baseOut = r.baseOutput(x, rows: n)
                assertClose(try delta.floats(p), zip(r.output(x, rows: n), baseOut).map { $0 - $1 }, "\(p) reference x·(W' − W)ᵀ")
                let g = r.gradients(x: x, dy: dy, rows: n)
                for (name, values) in [("dA", g.dA), ("dB", g.dB), ("dm", g.dm), ("dx", g.dx)] {
                    assertClose(try grads.floats(p + "." + name), values, "\(p) reference \(name)")
                }
                assertClose(try merged.floats(p + ".weight"), r.merged, "\(p) reference W'")
                // The runtime's steps against PEFT.
                let s = steps(r, x: x, dy: dy, rows: n, threads: 1)
                assertClose(zip(s.y, baseOut).map { Float(Double($0) - $1) }, try delta.floats(p).map(Double.init), "\(p) x·(W' − W)ᵀ")
                assertClose(s.dm, try grads.floats(p + ".dm").map(Double.init), "\(p) dm")
                assertClose(zip(s.mergedChange, r.w).map { $0 + $1 }, try merged.floats(p + ".weight").map(Double.init), "\(p) W'")
                assertClose(s.unmerged, r.w.map(Double.init), "\(p) unmerge")
            }
        }
    }

    /// Row norms (without forming V) against forming it, dm and the rescaled dy
    /// against the definition, on a shape with B not small (the cross terms matter).
    func testStepsAgainstTheDefinition() {
        var rng = TestRandom(seed: 2929)
        let (n, out, inDim, rank) = (4, 5, 7, 3)
        let r = DoRAReference(w: rng.floats(out * inDim), a: rng.floats(rank * inDim), b: rng.floats(out * rank),
                              m: rng.floats(out).map { $0 + 2 }, scale: 0.75, out: out, in: inDim, rank: rank)
        let x = rng.floats(n * inDim), dy = rng.floats(n * out)
        let s = steps(r, x: x, dy: dy, rows: n, threads: 1)
        let norms = r.norms
        assertClose(s.norms, norms, "‖V‖_row")
        assertClose(s.dm, r.gradients(x: x, dy: dy, rows: n).dm, "dm")
        assertClose(s.dy, (0..<(n * out)).map { Double(r.m[$0 % out]) / norms[$0 % out] * Double(dy[$0]) }, "(m/‖V‖) ⊙ dy")
        assertClose(s.y, r.output(x, rows: n), "x·W'ᵀ")
        assertClose(zip(s.mergedChange, r.w).map { $0 + $1 }, r.merged, "W'")
    }

    /// 1 and 2 threads give the same bits, on shapes that every step cuts into several blocks.
    func testThreadCountChangesNoBits() {
        var rng = TestRandom(seed: 29)
        let (n, out, inDim, rank) = (2048, 1024, 512, 8)
        XCTAssertGreaterThan(FixedBlocks(extent: out, unitWork: 2 * inDim * (rank + 1)).count, 1, "norms split")
        XCTAssertGreaterThan(FixedBlocks(extent: n, unitWork: 2 * out).count, 1, "rescale splits")
        XCTAssertGreaterThan(FixedBlocks(extent: out, unitWork: 3 * n).count, 1, "backward splits")
        XCTAssertGreaterThan(FixedBlocks(extent: out, unitWork: 4 * inDim).count, 1, "merge splits")
        let r = DoRAReference(w: rng.floats(out * inDim), a: rng.floats(rank * inDim), b: rng.floats(out * rank),
                              m: rng.floats(out).map { $0 + 2 }, scale: 2, out: out, in: inDim, rank: rank)
        let xv = rng.floats(n * out), dy = rng.floats(n * out)
        let one = steps(r, x: [], dy: dy, rows: n, threads: 1, xV: xv), two = steps(r, x: [], dy: dy, rows: n, threads: 2, xV: xv)
        for (name, a, b) in [("norms", one.norms, two.norms), ("y", one.y, two.y), ("dy", one.dy, two.dy), ("dm", one.dm, two.dm),
                             ("W' − W", one.mergedChange, two.mergedChange), ("unmerge", one.unmerged, two.unmerged)] {
            XCTAssertEqual(a.map(\.bitPattern), b.map(\.bitPattern), name)
        }
    }
}
