import AdaptRuntime
import AdaptTestSupport
import Foundation
import XCTest

/// The base checkpoint and stacked tensor the Tucker and CP init CLI tests
/// share: 3 layers × {query, value}, W [12, 10] with out = 3·4 and in = 2·5,
/// a smooth low-rank pattern per layer plus noise; stored [out, in] or
/// transposed. `stacked` lays `W/s` out in a group's `order` exactly as the
/// definition says (canonical axes, then permuted), and `deltas` turns an
/// approximation in that order back into `s·ΔW` per pair.
enum StackedBase {
    static let layers = 3, modules = ["query", "value"], out = 12, inFeatures = 10
    /// Canonical axes: layer, module, out.0, out.1, in.0, in.1.
    static let sizes = [layers, modules.count, 3, 4, 2, 5]
    static let names = ["layer", "module", "out.0", "out.1", "in.0", "in.1"]

    static func model(layout: String) -> String {
        """
        adaptc: 1
        name: StackedInit
        model:
          layers: \(layers)
          modules: {query: [\(out), \(inFeatures)], value: [\(out), \(inFeatures)]}
          weights: {key: "layers.{layer}.{module}.weight", layout: \(layout)}
        """
    }

    @discardableResult
    static func write(_ sandbox: CLISandbox, _ name: String = "base.safetensors", transposed: Bool = false,
                      poison: Bool = false, drop: String? = nil) throws -> [String: [Float]] {
        var random = TestRandom(seed: 33)
        var weights: [String: [Float]] = [:]
        var writer = SafetensorsWriter(metadata: ["format": "pt"])
        for layer in 0..<layers {
            for module in modules {
                let key = "layers.\(layer).\(module).weight"
                var w = (0..<(out * inFeatures)).map { k -> Float in
                    let (o, i) = (k / inFeatures, k % inFeatures)
                    return Float(layer + 1) * sin(Float(o * 3 + i) * 0.37 + (module == "query" ? 0 : 1))
                        + Float(2 - layer) * cos(Float(o) * 0.5 - Float(i) * 0.21) + 0.05 * random.uniform()
                }
                if poison, layer == 2, module == "value" { w[7] = .infinity }
                weights[key] = w
                if key == drop { continue }
                if transposed {
                    var t = [Float](repeating: 0, count: w.count)
                    for o in 0..<out { for i in 0..<inFeatures { t[i * out + o] = w[o * inFeatures + i] } }
                    writer.add(key, floats: t, shape: [inFeatures, out])
                } else {
                    writer.add(key, floats: w, shape: [out, inFeatures])
                }
                writer.add("layers.\(layer).\(module).bias", floats: random.floats(out), shape: [out])
            }
        }
        try writer.write(to: sandbox.path(name))
        return weights
    }

    /// T = W/s in `order` (float64 of the float32 weights), and its shape.
    static func stacked(_ weights: [String: [Float]], order: [String], scale: Double) -> (tensor: [Double], shape: [Int]) {
        let axes = order.map { names.firstIndex(of: $0)! }
        var canonical: [Double] = []
        for layer in 0..<layers { for module in modules {
            canonical += weights["layers.\(layer).\(module).weight"]!.map { Double($0) / scale }
        } }
        return (NaiveTTSVD.permuted(canonical, sizes: sizes, order: axes), axes.map { sizes[$0] })
    }

    /// s·X̂ per pair key `LAYER.MODULE`, X̂ given in `order`.
    static func deltas(_ approximation: [Double], order: [String], scale: Double) -> [String: [Double]] {
        let axes = order.map { names.firstIndex(of: $0)! }
        var inverse = [Int](repeating: 0, count: axes.count)
        for (position, axis) in axes.enumerated() { inverse[axis] = position }
        let back = NaiveTTSVD.permuted(approximation, sizes: axes.map { sizes[$0] }, order: inverse)
        var deltas: [String: [Double]] = [:]
        let block = out * inFeatures
        for layer in 0..<layers { for (m, module) in modules.enumerated() {
            let start = (layer * modules.count + m) * block
            deltas["\(layer).\(module)"] = back[start..<(start + block)].map { $0 * scale }
        } }
        return deltas
    }

    static func norm(_ x: [Double]) -> Double { x.reduce(0) { $0 + $1 * $1 }.squareRoot() }

    /// Runs init (with `--residual`) and materialize for `spec`, then checks:
    /// ΔW per pair is `expected` (relative Frobenius distance < `tolerance`),
    /// W − residual = ΔW to 1e-5, other tensors byte for byte, and the printed
    /// captured energy is ‖ΔW‖²/‖W‖² of the reference. Returns init's stdout.
    @discardableResult
    static func checkInit(_ sandbox: CLISandbox, spec: String, weights: [String: [Float]], transposed: Bool,
                          expected: (String) throws -> [String: [Double]], tolerance: Double,
                          what: String) throws -> String {
        try sandbox.write(spec, to: "s.adapt.yaml")
        let run = try sandbox.adaptc("init", "s.adapt.yaml", "--base", "base.safetensors", "-o", "a.safetensors",
                                     "--residual", "r.safetensors")
        XCTAssertEqual(run.status, 0, "\(what): \(run)")
        XCTAssertTrue(run.stdout.contains("captured energy") && run.stdout.contains("relative error"), "\(run)")
        let materialized = try sandbox.adaptc("materialize", "s.adapt.yaml", "--adapter", "a.safetensors", "-o", "d.safetensors")
        XCTAssertEqual(materialized.status, 0, "\(what): \(materialized)")
        let deltas = try SafetensorsFile.read(path: sandbox.path("d.safetensors"))
        let residual = try SafetensorsFile.read(path: sandbox.path("r.safetensors"))
        let base = try SafetensorsFile.read(path: sandbox.path("base.safetensors"))
        let want = try expected(run.stdout)
        var energy = (delta: 0.0, weight: 0.0)
        for (key, reference) in want.sorted(by: { $0.key < $1.key }) {
            let got = try deltas.floats(key).map(Double.init)
            XCTAssertLessThan(zip(got, reference).reduce(0.0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) }.squareRoot() / norm(reference),
                              tolerance, "\(what) \(key)")
            let weightKey = "layers.\(key).weight"
            let w = weights[weightKey]!
            var stored = try residual.floats(weightKey)
            if transposed {
                let t = stored
                for o in 0..<out { for i in 0..<inFeatures { stored[o * inFeatures + i] = t[i * out + o] } }
            }
            // W − residual reproduces the materialized ΔW (1e-5 relative to ‖ΔW‖).
            let removed = zip(w, stored).map { Double($0.0) - Double($0.1) }
            XCTAssertLessThan(zip(removed, got).reduce(0.0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) }.squareRoot() / norm(got), 1e-5,
                              "residual \(what) \(key)")
            XCTAssertEqual(try residual.rawBytes("layers.\(key).bias"), try base.rawBytes("layers.\(key).bias"))
            energy.delta += reference.reduce(0.0) { $0 + $1 * $1 }
            energy.weight += w.reduce(0.0) { $0 + Double($1) * Double($1) }
        }
        XCTAssertEqual(try InitTTSVDCLITests.figure(after: "captured energy ‖ΔW‖²/‖W‖² ", in: run.stdout),
                       energy.delta / energy.weight, accuracy: 1e-5, "\(what): \(run)")
        return run.stdout
    }
}
