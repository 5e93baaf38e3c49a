import AdaptRuntime
import AdaptTestSupport
import Foundation
import XCTest

/// `adaptc init` with `tt-svd` through the executable: materialize after init
/// is the principal tensor of the stacked weights (a float64 Jacobi TT-SVD in
/// the same sweep direction, `NaiveTTSVD`), for orders whose sweep streams
/// left to right, right to left, or reads the tensor whole; the residual is
/// W − ΔW; `residual: false` gives ΔW = 0; seeds reproduce files; bad bases
/// fail with one line and write nothing.
final class InitTTSVDCLITests: XCTestCase {
    var sandbox: CLISandbox!

    override func setUpWithError() throws { sandbox = try CLISandbox() }
    override func tearDown() { sandbox.remove() }

    static let layers = 3, modules = ["query", "value"], out = 12, inFeatures = 10
    static let outFactors = [3, 4], inFactors = [2, 5]
    /// Canonical axes: layer, module, out.0, out.1, in.0, in.1.
    static let canonicalSizes = [layers, modules.count] + outFactors + inFactors
    static let axisNames = ["layer", "module", "out.0", "out.1", "in.0", "in.1"]
    /// Without `factor:`: axes layer, module, out, in.
    static let plainSizes = [layers, modules.count, out, inFeatures]
    static let plainNames = ["layer", "module", "out", "in"]

    struct Variant {
        var order: [String]
        /// The sweep adaptc takes: the reference sweeps the same way.
        var rightToLeft: Bool
        var layout: String = "out_in"
        var extra: String = ""
        var rank = 3
        var factorised = true
    }

    static func spec(_ variant: Variant) -> String {
        """
        adaptc: 1
        name: TTPrincipal
        model:
          layers: \(layers)
          modules: {query: [\(out), \(inFeatures)], value: [\(out), \(inFeatures)]}
          weights: {key: "layers.{layer}.{module}.weight", layout: \(variant.layout)}
        adapters:
          - name: tt
            structure: tensor-train
            modules: [query, value]
            \(variant.factorised ? "factor: {out: [3, 4], in: [2, 5]}" : "# out and in not factorised")
            order: [\(variant.order.joined(separator: ", "))]
            rank: \(variant.rank)
            alpha: 6
            init: {method: tt-svd\(variant.extra)}
        """
    }

    /// Weights: a low-rank stacked train plus noise, so the principal part is
    /// well defined; stored [out, in] or transposed.
    func writeBase(_ name: String = "base.safetensors", transposed: Bool = false,
                   poison: Bool = false, drop: String? = nil, wrongShape: Bool = false) throws -> [String: [Float]] {
        var random = TestRandom(seed: 21)
        var weights: [String: [Float]] = [:]
        var writer = SafetensorsWriter(metadata: ["format": "pt"])
        for layer in 0..<Self.layers {
            for module in Self.modules {
                let key = "layers.\(layer).\(module).weight"
                var w = (0..<(Self.out * Self.inFeatures)).map { k -> Float in
                    let (o, i) = (k / Self.inFeatures, k % Self.inFeatures)
                    return Float(layer + 1) * sin(Float(o * 3 + i) * 0.37 + (module == "query" ? 0 : 1))
                        + 0.05 * random.uniform()
                }
                if poison, layer == 2, module == "value" { w[5] = .nan }
                weights[key] = w
                if key == drop { continue }
                if transposed {
                    var t = [Float](repeating: 0, count: w.count)
                    for o in 0..<Self.out { for i in 0..<Self.inFeatures { t[i * Self.out + o] = w[o * Self.inFeatures + i] } }
                    writer.add(key, floats: t, shape: [Self.inFeatures, Self.out])
                } else {
                    writer.add(key, floats: w, shape: wrongShape && layer == 1 ? [Self.inFeatures, Self.out] : [Self.out, Self.inFeatures])
                }
                writer.add("layers.\(layer).\(module).bias", floats: random.floats(Self.out), shape: [Self.out])
            }
        }
        try writer.write(to: sandbox.path(name))
        return weights
    }

    /// ΔW by pair key `LAYER.MODULE`: s·TT-SVD(W/s) in `order`, computed naively.
    static func principal(_ weights: [String: [Float]], variant: Variant) -> [String: [Double]] {
        let (names, canonicalSizes) = variant.factorised ? (axisNames, canonicalSizes) : (plainNames, plainSizes)
        let order = variant.order.map { names.firstIndex(of: $0)! }
        let sizes = order.map { canonicalSizes[$0] }
        // The plan's bonds: the uniform rank clipped; s = alpha / the largest.
        let caps = (1..<sizes.count).map { min(variant.rank, sizes[..<$0].reduce(1, *), sizes[$0...].reduce(1, *)) }
        let scale = 6 / Double(caps.max()!)
        var canonical: [Double] = []
        for layer in 0..<layers { for module in modules {
            canonical += weights["layers.\(layer).\(module).weight"]!.map { Double($0) / scale }
        } }
        let tensor = NaiveTTSVD.permuted(canonical, sizes: canonicalSizes, order: order)
        var approximation: [Double]
        if variant.rightToLeft {
            let flipped = NaiveTTSVD.reversedModes(tensor, sizes: sizes)
            approximation = NaiveTTSVD.approximate(flipped, sizes: sizes.reversed(), caps: caps.reversed()).tensor
            approximation = NaiveTTSVD.reversedModes(approximation, sizes: sizes.reversed())
        } else {
            approximation = NaiveTTSVD.approximate(tensor, sizes: sizes, caps: caps).tensor
        }
        // Back to canonical: the inverse permutation.
        var inverse = [Int](repeating: 0, count: order.count)
        for (position, axis) in order.enumerated() { inverse[axis] = position }
        let back = NaiveTTSVD.permuted(approximation, sizes: sizes, order: inverse)
        var deltas: [String: [Double]] = [:]
        let block = out * inFeatures
        for layer in 0..<layers { for (m, module) in modules.enumerated() {
            let start = (layer * modules.count + m) * block
            deltas["\(layer).\(module)"] = back[start..<(start + block)].map { $0 * scale }
        } }
        return deltas
    }

    static func figure(after label: String, in text: String) throws -> Double {
        guard let range = text.range(of: label) else { throw CLIError("no \"\(label)\" in \(text)") }
        let digits = text[range.upperBound...].prefix { $0.isNumber || $0 == "." || $0 == "e" || $0 == "-" }
        guard let value = Double(digits) else { throw CLIError("no number after \"\(label)\" in \(text)") }
        return value
    }

    static let variants = [
        // out.1 first: the first unfolding streams weight by weight, left to right.
        Variant(order: ["out.1", "layer", "in.0", "module", "out.0", "in.1"], rightToLeft: false),
        // The default order ends in in.1: streamed right to left; the base stored
        // [in, out]; rank 4 is clipped to 3 at the first bond only (caps not symmetric).
        Variant(order: ["layer", "module", "out.0", "out.1", "in.0", "in.1"], rightToLeft: true, layout: "in_out", rank: 4),
        // Both ends outside a weight: the tensor is read whole, left to right.
        Variant(order: ["layer", "out.0", "in.1", "out.1", "in.0", "module"], rightToLeft: false),
        // Unfactorised, LoTR's and MetaTT's kind of order: out first (a whole row of W per index), in last.
        Variant(order: ["out", "layer", "module", "in"], rightToLeft: false, rank: 4, factorised: false),
        Variant(order: ["layer", "in", "module", "out"], rightToLeft: true, layout: "in_out", rank: 4, factorised: false),
    ]

    func testMaterializeIsThePrincipalTensorAndResidualIsWMinusDelta() throws {
        for (n, variant) in Self.variants.enumerated() {
            try sandbox.write(Self.spec(variant), to: "t\(n).adapt.yaml")
            let weights = try writeBase("base\(n).safetensors", transposed: variant.layout == "in_out")
            let run = try sandbox.adaptc("init", "t\(n).adapt.yaml", "--base", "base\(n).safetensors", "-o", "a\(n).safetensors",
                                         "--residual", "r\(n).safetensors")
            XCTAssertEqual(run.status, 0, "\(run)")
            XCTAssertTrue(run.stdout.contains("TT-SVD") && run.stdout.contains("captured energy")
                          && run.stdout.contains("relative error") && run.stdout.contains("bonds r1"), "\(run)")
            XCTAssertTrue(run.stdout.contains(variant.rightToLeft ? "right to left" : "left to right"), "\(run)")
            let materialized = try sandbox.adaptc("materialize", "t\(n).adapt.yaml", "--adapter", "a\(n).safetensors",
                                                  "-o", "d\(n).safetensors")
            XCTAssertEqual(materialized.status, 0, "\(materialized)")
            let deltas = try SafetensorsFile.read(path: sandbox.path("d\(n).safetensors"))
            let residual = try SafetensorsFile.read(path: sandbox.path("r\(n).safetensors"))
            let base = try SafetensorsFile.read(path: sandbox.path("base\(n).safetensors"))
            let expected = Self.principal(weights, variant: variant)
            var energy = (delta: 0.0, weight: 0.0)
            for (key, want) in expected.sorted(by: { $0.key < $1.key }) {
                let got = try deltas.floats(key)
                XCTAssertLessThan(maxRelativeError(got, want), 1e-4, "\(variant.order) \(key)")
                // The residual is W − ΔW (stored as the base stores it).
                let weightKey = "layers.\(key).weight"
                let w = weights[weightKey]!
                var stored = try residual.floats(weightKey)
                if variant.layout == "in_out" {
                    var t = stored
                    for o in 0..<Self.out { for i in 0..<Self.inFeatures { t[o * Self.inFeatures + i] = stored[i * Self.out + o] } }
                    stored = t
                }
                // W − residual reproduces ΔW (1e-5 relative to ‖ΔW‖).
                let removed = zip(w, stored).map { Double($0.0) - Double($0.1) }
                let distance = zip(removed, want).reduce(0.0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) }.squareRoot()
                XCTAssertLessThan(distance / want.reduce(0.0) { $0 + $1 * $1 }.squareRoot(), 1e-5, "residual \(variant.order) \(key)")
                XCTAssertEqual(try residual.rawBytes("layers.\(key).bias"), try base.rawBytes("layers.\(key).bias"))
                energy.delta += want.reduce(0.0) { $0 + $1 * $1 }
                energy.weight += w.reduce(0.0) { $0 + Double($1) * Double($1) }
            }
            XCTAssertEqual(try Self.figure(after: "captured energy ‖ΔW‖²/‖W‖² ", in: run.stdout), energy.delta / energy.weight,
                           accuracy: 2e-6, "\(run)")
        }
    }

    /// `residual: false`: ΔW = 0 (the first out core zeroed), the other cores
    /// are the decomposition's, and the residual base is W itself.
    func testResidualFalseStartsAtZeroDelta() throws {
        var variant = Self.variants[0]
        variant.extra = ", residual: false"
        try sandbox.write(Self.spec(variant), to: "t.adapt.yaml")
        let weights = try writeBase()
        let run = try sandbox.adaptc("init", "t.adapt.yaml", "--base", "base.safetensors", "-o", "a.safetensors",
                                     "--residual", "r.safetensors")
        XCTAssertEqual(run.status, 0, "\(run)")
        // The first out mode in this order is out.1, the core at position 0 (DESIGN §3).
        XCTAssertTrue(run.stdout.contains("residual: false, so tt.core.0 is zeroed"), "\(run)")
        let adapter = try SafetensorsFile.read(path: sandbox.path("a.safetensors"))
        XCTAssertTrue(try adapter.floats("tt.core.0").allSatisfy { $0 == 0 })
        for k in 1..<6 { XCTAssertFalse(try adapter.floats("tt.core.\(k)").allSatisfy { $0 == 0 }, "core \(k)") }
        let materialized = try sandbox.adaptc("materialize", "t.adapt.yaml", "--adapter", "a.safetensors", "-o", "d.safetensors")
        XCTAssertEqual(materialized.status, 0, "\(materialized)")
        let deltas = try SafetensorsFile.read(path: sandbox.path("d.safetensors"))
        XCTAssertEqual(deltas.tensors.count, 6)
        let residual = try SafetensorsFile.read(path: sandbox.path("r.safetensors"))
        for entry in deltas.tensors {
            XCTAssertTrue(try deltas.floats(entry.name).allSatisfy { $0 == 0 }, entry.name)
            XCTAssertEqual(try residual.floats("layers.\(entry.name).weight"), weights["layers.\(entry.name).weight"])
        }
    }

    /// The same spec, base and seed give byte-identical adapter and residual files.
    func testSameSeedSameFiles() throws {
        var variant = Self.variants[1]
        variant.extra = ", tolerance: 0.2"
        try sandbox.write(Self.spec(variant), to: "t.adapt.yaml")
        _ = try writeBase(transposed: true)
        var outputs: [[UInt8]] = []
        for name in ["1", "2"] {
            let run = try sandbox.adaptc("init", "t.adapt.yaml", "--base", "base.safetensors", "-o", "a\(name).safetensors",
                                         "--residual", "r\(name).safetensors", "--seed", "5", "--threads", "2")
            XCTAssertEqual(run.status, 0, "\(run)")
            // ε = 0.2 within the caps: the bound is printed and the measured error keeps it.
            XCTAssertTrue(run.stdout.contains("bound 0.200000") && run.stdout.contains(" of "), "\(run)")
            XCTAssertLessThanOrEqual(try Self.figure(after: "relative error ‖W − ΔW‖/‖W‖ ", in: run.stdout), 0.2, "\(run)")
            outputs.append(try sandbox.bytes("a\(name).safetensors") + sandbox.bytes("r\(name).safetensors"))
        }
        XCTAssertEqual(outputs[0], outputs[1])
    }

    /// A missing weight, a wrong shape, NaN in the base and a group over
    /// ADAPTC_MEMORY_LIMIT: one line each, exit 1, nothing written.
    func testBadBasesFailWithOneLineAndWriteNothing() throws {
        try sandbox.write(Self.spec(Self.variants[0]), to: "t.adapt.yaml")
        _ = try writeBase("missing.safetensors", drop: "layers.1.value.weight")
        _ = try writeBase("shape.safetensors", wrongShape: true)
        _ = try writeBase("nan.safetensors", poison: true)
        _ = try writeBase()
        let before = sandbox.listing()
        let cases: [([String], String, String?)] = [
            (["--base", "missing.safetensors"], "no tensor \"layers.1.value.weight\"", nil),
            (["--base", "shape.safetensors"], "tensor \"layers.1.query.weight\" has shape [10, 12], the spec says [12, 10]", nil),
            (["--base", "nan.safetensors"], "tensor \"layers.2.value.weight\" contains NaN (element 5)", nil),
            (["--base", "base.safetensors"], "over the memory limit of 9.8 KiB", "10000"),
            ([], "--base", nil),
        ]
        for (arguments, needle, limit) in cases {
            if let limit { setenv("ADAPTC_MEMORY_LIMIT", limit, 1) }
            defer { unsetenv("ADAPTC_MEMORY_LIMIT") }
            // No --residual: its writer checks for NaN too, and the stage must on its own.
            let run = try sandbox.adaptc(["init", "t.adapt.yaml", "-o", "a.safetensors"] + arguments)
            XCTAssertEqual(run.status, 1, "\(run)")
            XCTAssertEqual(run.stderrLines.count, 1, "\(run)")
            XCTAssertTrue(run.stderr.hasPrefix("adaptc: error: ") && run.stderr.contains(needle), "\(run)")
            XCTAssertEqual(sandbox.listing(), before, "\(run)")
        }
    }

    /// LoftQ on a tensor-train: one iteration is tt-svd of W − Q with Q =
    /// quantise(W) the base `--residual` writes; over several, the error
    /// ‖W − (Q + ΔW)‖/‖W‖ stays below Q alone, never grows, and is what the
    /// written Q and the stored cores give.
    func testLoftQAlternatesQuantiserAndTTSVD() throws {
        var variant = Self.variants[0]
        variant.extra = ", quantiser: {bits: 4, group: 5, kind: symmetric}, iterations: 1"
        try sandbox.write(Self.spec(variant).replacingOccurrences(of: "method: tt-svd", with: "method: loftq"), to: "q1.adapt.yaml")
        variant.extra = variant.extra.replacingOccurrences(of: "iterations: 1", with: "iterations: 4")
        try sandbox.write(Self.spec(variant).replacingOccurrences(of: "method: tt-svd", with: "method: loftq"), to: "q4.adapt.yaml")
        let weights = try writeBase()
        for name in ["q1", "q4"] {
            let run = try sandbox.adaptc("init", "\(name).adapt.yaml", "--base", "base.safetensors", "-o", "\(name).safetensors",
                                         "--residual", "\(name)-q.safetensors")
            XCTAssertEqual(run.status, 0, "\(run)")
            let materialized = try sandbox.adaptc("materialize", "\(name).adapt.yaml", "--adapter", "\(name).safetensors",
                                                  "-o", "\(name)-d.safetensors")
            XCTAssertEqual(materialized.status, 0, "\(materialized)")
            let q = try SafetensorsFile.read(path: sandbox.path("\(name)-q.safetensors"))
            let d = try SafetensorsFile.read(path: sandbox.path("\(name)-d.safetensors"))
            var removed: [String: [Float]] = [:]
            var missed = 0.0, total = 0.0
            for (key, w) in weights {
                let base = try q.floats(key)
                removed[key] = zip(w, base).map { $0 - $1 }
                let pair = key.replacingOccurrences(of: "layers.", with: "").replacingOccurrences(of: ".weight", with: "")
                let delta = try d.floats(pair)
                for k in w.indices {
                    total += Double(w[k]) * Double(w[k])
                    let r = Double(w[k]) - Double(base[k]) - Double(delta[k])
                    missed += r * r
                }
            }
            let line = run.stdout
            let figures = try line.components(separatedBy: "by iteration ")[1].components(separatedBy: " (Q alone")[0]
                .components(separatedBy: ", ").map { try XCTUnwrap(Double($0)) }
            let alone = try Self.figure(after: "(Q alone ", in: line)
            XCTAssertEqual(figures.count, name == "q1" ? 1 : 4, line)
            XCTAssertLessThan(figures.last!, alone, line)
            for (a, b) in zip(figures, figures.dropFirst()) { XCTAssertLessThanOrEqual(b, a * (1 + 1e-6), line) }
            if figures.count > 1 { XCTAssertLessThan(figures.last!, 0.99 * figures[0], "the alternation gains nothing: \(line)") }
            XCTAssertEqual((missed / total).squareRoot(), figures.last!, accuracy: 2e-6, line)
            if name == "q1" {
                // Q_1 = quantise(W) (on the int4 grid: each group of 5 is a multiple of its scale) …
                let grid = try q.floats("layers.0.query.weight")
                let scale = grid[0..<5].map { abs($0) }.max()! / 7
                for v in grid[0..<5] { XCTAssertEqual((v / scale).rounded(), v / scale, accuracy: 1e-4) }
                // … and the cores are tt-svd of (W − Q_1)/s.
                for (key, want) in Self.principal(removed, variant: variant) {
                    XCTAssertLessThan(maxRelativeError(try d.floats(key), want), 1e-4, key)
                }
            }
        }
    }
}

struct CLIError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
