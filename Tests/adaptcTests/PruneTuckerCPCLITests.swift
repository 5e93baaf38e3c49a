import AdaptRuntime
import AdaptcCore
import Foundation
import AdaptTestSupport
import XCTest

/// `adaptc prune` on Tucker and cp groups (DESIGN §4): the pruned spec's
/// `ranks:` / `rank:` check and compile, eval on the calibration rows loses what
/// the report says, eval on held-out rows from the same distribution loses it
/// within that set's noise, the layer level keeps the layers the importance
/// chose and `GROUP_shared` is their mean ΔW, and bad input is one line with
/// nothing written.
final class PruneTuckerCPCLITests: XCTestCase {
    private var sandbox: CLISandbox!

    override func setUpWithError() throws { sandbox = try CLISandbox() }
    override func tearDown() { sandbox?.remove() }

    static func model(_ layers: Int, flow: Bool = false) -> String {
        """
        adaptc: 1
        name: PruneTc
        model:
          layers: \(layers)
          modules:\(flow ? " {q: [12, 12], v: [12, 12]}" : "\n    q: [12, 12]\n    v: [12, 12]")
        """
    }

    static func tucker(layers: Int) -> String {
        model(layers) + """

        adapters:
          - name: tk   # a Tucker group
            structure: tucker
            modules: [q, v]
            factor: {out: [3, 4]}
            order: [out.1, layer, in, module, out.0]
            ranks: {layer: 2, module: full, out.0: 3, out.1: 4, in: 5}
            alpha: 10
        """
    }

    static func cp(layers: Int) -> String {
        model(layers) + """

        adapters:
          - name: tk   # a CP group
            structure: cp
            modules: [q, v]
            factor: {in: [4, 3]}
            rank: 8
            alpha: 10
        """
    }

    static func pairs(_ layers: Int) -> [Pair] { (0..<layers).flatMap { l in ["q", "v"].map { Pair(layer: l, module: $0) } } }

    /// Random core/factors that decay along every index (so thresholds cut), the
    /// layer factor's rows about equal but the weak layers' a hundred times smaller; calibration and
    /// held-out rows per pair from one distribution (three directions plus noise).
    @discardableResult
    func writeInputs(_ spec: String, layers: Int, weakLayers: Set<Int> = [], rows: Int = 40) throws -> [String: [Float]] {
        let path = try sandbox.write(spec, to: "prune-tc.adapt.yaml")
        let (checked, plan) = try SpecLoader.loadPlanned(path: path)
        var random = TestRandom(seed: 91)
        var writer = SafetensorsWriter(metadata: AdapterFiles.metadata(checked))
        var tensors: [String: [Float]] = [:]
        for p in plan.parameters {
            var values = random.floats(p.count)
            let last = p.shape.last!
            for i in values.indices { values[i] /= Float(1 + i % last) }
            if p.key == "tk.factor.layer" {
                // Layers of about equal weight, the weak ones a hundred times smaller.
                for i in values.indices { values[i] = (1 + 0.3 * random.uniform()) * (weakLayers.contains(i / last) ? 0.01 : 1) }
            }
            if p.key == "tk.core" {
                // Decay along every core index.
                for i in values.indices {
                    var rest = i, w: Float = 1
                    for n in p.shape.reversed() { w /= Float(1 + rest % n); rest /= n }
                    values[i] = random.uniform() * w
                }
            }
            tensors[p.key] = values
            writer.add(p.key, floats: values, shape: p.shape)
        }
        try writer.write(to: sandbox.path("adapter.safetensors"))
        var calib = SafetensorsWriter(), held = SafetensorsWriter(), r = TestRandom(seed: 92)
        for pair in Self.pairs(layers) {
            let basis = r.floats(3 * 12)
            for target in [0, 1] {
                var x = [Float](repeating: 0, count: rows * 12)
                for n in 0..<rows { let c = r.floats(3); for i in 0..<12 { x[n * 12 + i] = 0.05 * r.uniform() + (0..<3).reduce(0) { $0 + c[$1] * basis[$1 * 12 + i] } } }
                if target == 0 { calib.add(pair.key, floats: x, shape: [rows, 12]) } else { held.add(pair.key, floats: x, shape: [rows, 12]) }
            }
        }
        try calib.write(to: sandbox.path("calib.safetensors"))
        try held.write(to: sandbox.path("held.safetensors"))
        return tensors
    }

    /// The share of the output energy lost between two eval outputs and its
    /// standard error as a ratio estimator over the rows: SE = √Σ(e_r − ρ t_r)² / Σ t_r.
    func lostShare(_ original: String, _ pruned: String) throws -> (share: Double, standardError: Double, lost: Double, total: Double) {
        let a = try SafetensorsFile.read(path: sandbox.path(original)), b = try SafetensorsFile.read(path: sandbox.path(pruned))
        var perRow: [(e: Double, t: Double)] = []
        for entry in a.tensors {
            let u = try a.floats(entry.name), v = try b.floats(entry.name), width = entry.shape[1]
            for row in 0..<entry.shape[0] {
                var e = 0.0, t = 0.0
                for j in 0..<width {
                    let y = Double(u[row * width + j]), d = y - Double(v[row * width + j])
                    t += y * y; e += d * d
                }
                perRow.append((e, t))
            }
        }
        let lost = perRow.reduce(0) { $0 + $1.e }, total = perRow.reduce(0) { $0 + $1.t }, rho = lost / total
        let spread = perRow.reduce(0) { $0 + ($1.e - rho * $1.t) * ($1.e - rho * $1.t) }.squareRoot()
        return (rho, spread / total, lost, total)
    }

    func report(_ out: String) throws -> [String: Any] {
        let report = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: sandbox.path("\(out)/report.json")))) as! [String: Any]
        return (report["groups"] as! [[String: Any]])[0]
    }

    func eval(_ spec: String, _ adapter: String, _ input: String, _ out: String) throws {
        let run = try sandbox.adaptc("eval", spec, "--adapter", adapter, "--input", input, "-o", out)
        XCTAssertEqual(run.status, 0, "\(run)")
    }

    /// Rank level on both structures and scopes: the spec checks and compiles,
    /// eval on the calibration rows loses what report.json says (float32 eval:
    /// 1e-5 of the total), and on held-out rows within 4 standard errors of the
    /// two sets' ratio estimators.
    func testPrunedRanksCheckCompileAndLoseWhatTheReportSays() throws {
        for (structure, spec) in [("tucker", Self.tucker(layers: 3)), ("cp", Self.cp(layers: 3))] {
            try writeInputs(spec, layers: 3)
            try eval("prune-tc.adapt.yaml", "adapter.safetensors", "calib.safetensors", "y.safetensors")
            try eval("prune-tc.adapt.yaml", "adapter.safetensors", "held.safetensors", "h.safetensors")
            for scope in structure == "cp" ? ["pair"] : ["pair", "global"] {
                let out = "\(structure)-\(scope)"
                let run = try sandbox.adaptc("prune", "prune-tc.adapt.yaml", "--adapter", "adapter.safetensors", "--calib", "calib.safetensors",
                                             "--levels", "rank", "--threshold", "0.9", "--scope", scope, "-o", out)
                XCTAssertEqual(run.status, 0, "\(run)")
                print(run.stdout)
                XCTAssertEqual(run.stdoutLines.first?.split(separator: " ", omittingEmptySubsequences: true),
                               ["group", "params", "before", "params", "after", "energy", "kept", "dropped"], "\(run)")
                XCTAssertTrue(run.stdoutLines.contains { $0.hasPrefix("tk") && $0.contains(structure == "cp" ? "rank 8 →" : "ranks ") }, "\(run)")
                let text = try String(contentsOfFile: sandbox.path("\(out)/prune-tc.adapt.yaml"), encoding: .utf8)
                print(text)
                XCTAssertTrue(text.contains("- name: tk   # a "), text)
                if structure == "cp" {
                    XCTAssertTrue(text.contains("# leave-one-out (threshold 0.9): kept "), text)
                } else {
                    XCTAssertTrue(text.contains("ranks:  # data-weighted Tucker rounding"), text)
                    XCTAssertTrue(text.contains("  module: full  # stays full"), text)
                    XCTAssertTrue(text.contains("of the output energy kept (exact)") && text.contains("(coupled: Gram pooled, loss measured)"), text)
                }
                XCTAssertEqual(try sandbox.adaptc("check", "\(out)/prune-tc.adapt.yaml").status, 0)
                let compile = try sandbox.adaptc("compile", "\(out)/prune-tc.adapt.yaml", "-o", "gen-\(out)")
                XCTAssertEqual(compile.status, 0, "\(compile)")

                try eval("\(out)/prune-tc.adapt.yaml", "\(out)/prune-tc.safetensors", "calib.safetensors", "y-\(out).safetensors")
                try eval("\(out)/prune-tc.adapt.yaml", "\(out)/prune-tc.safetensors", "held.safetensors", "h-\(out).safetensors")
                let calibration = try lostShare("y.safetensors", "y-\(out).safetensors")
                let heldOut = try lostShare("h.safetensors", "h-\(out).safetensors")
                let group = try report(out)
                XCTAssertEqual(1 - calibration.share, group["energy_kept"] as! Double, accuracy: 1e-5, out)
                XCTAssertEqual(group["energy_total"] as! Double, calibration.total, accuracy: 1e-5 * calibration.total, out)
                XCTAssertGreaterThan(calibration.share, 1e-7, "\(out): something must be cut")
                // One budget of 1 − T for global scope and for cp's one set of components; per mode for Tucker's pair scope.
                if scope == "global" || structure == "cp" { XCTAssertLessThanOrEqual(calibration.share, 0.1 + 1e-5, out) }
                let noise = 4 * (calibration.standardError * calibration.standardError + heldOut.standardError * heldOut.standardError).squareRoot()
                print("\(out): lost \(calibration.share) on the calibration rows, \(heldOut.share) held out (4 SE = \(noise))")
                XCTAssertEqual(heldOut.share, calibration.share, accuracy: noise, out)
                let modes = group["modes"] as! [[String: Any]]
                XCTAssertEqual(modes.count, structure == "cp" ? 1 : 5)
                XCTAssertTrue(modes.contains { ($0["rank_after"] as? Int ?? 0) < ($0["rank_before"] as? Int ?? 0) }, out)
                let svg = try String(contentsOfFile: sandbox.path("\(out)/report.svg"), encoding: .utf8)
                XCTAssertTrue(svg.contains(structure == "cp" ? "leave-one-out loss per component" : "data-weighted spectra per mode"), out)
            }
        }
    }

    /// Layer level: the weak layers leave the group's `layers:` for
    /// `tk_shared`, the kept layers' ΔW are unchanged, the shared group's ΔW is
    /// the dropped layers' mean (of rank ≤ the group's rank here, so its rank-r
    /// part is all of it), and eval loses what the report says.
    func testLayerLevelCutsWeakLayersIntoASharedGroup() throws {
        for (structure, spec) in [("tucker", Self.tucker(layers: 4)), ("cp", Self.cp(layers: 4))] {
            try writeInputs(spec, layers: 4, weakLayers: [1, 3])
            let out = "l-\(structure)"
            let run = try sandbox.adaptc("prune", "prune-tc.adapt.yaml", "--adapter", "adapter.safetensors", "--calib", "calib.safetensors",
                                         "--levels", "layer", "--threshold", "0.95", "-o", out)
            XCTAssertEqual(run.status, 0, "\(run)")
            let text = try String(contentsOfFile: sandbox.path("\(out)/prune-tc.adapt.yaml"), encoding: .utf8)
            XCTAssertTrue(text.contains("layers: [0, 2]"), text)
            XCTAssertTrue(text.contains("- name: tk_shared"), text)
            XCTAssertEqual(try sandbox.adaptc("check", "\(out)/prune-tc.adapt.yaml").status, 0)
            let compile = try sandbox.adaptc("compile", "\(out)/prune-tc.adapt.yaml", "-o", "gen-\(structure)")
            XCTAssertEqual(compile.status, 0, "\(compile)")
            for (spec, adapter, name) in [("prune-tc.adapt.yaml", "adapter.safetensors", "d"), ("\(out)/prune-tc.adapt.yaml", "\(out)/prune-tc.safetensors", "dl")] {
                XCTAssertEqual(try sandbox.adaptc("materialize", spec, "--adapter", adapter, "-o", "\(name).safetensors").status, 0)
                try eval(spec, adapter, "calib.safetensors", "y\(name).safetensors")
            }
            let before = try SafetensorsFile.read(path: sandbox.path("d.safetensors")), after = try SafetensorsFile.read(path: sandbox.path("dl.safetensors"))
            for pair in Self.pairs(4) where [0, 2].contains(pair.layer) {
                let a = try before.floats(pair.key), b = try after.floats(pair.key)
                let worst = zip(a, b).map { abs($0 - $1) }.max()!, size = a.map(abs).max()!
                XCTAssertLessThan(worst / size, 1e-5, "\(structure) \(pair.key)")
            }
            for module in ["q", "v"] {
                let mean = zip(try before.floats("1.\(module)"), try before.floats("3.\(module)")).map { ($0 + $1) / 2 }
                for layer in [1, 3] {
                    let got = try after.floats("\(layer).\(module)")
                    let worst = zip(got, mean).map { abs($0 - $1) }.max()!, size = mean.map(abs).max()!
                    XCTAssertLessThan(worst / size, 1e-4, "\(structure) \(layer).\(module)")
                }
            }
            let lost = try lostShare("yd.safetensors", "ydl.safetensors")
            let group = try report(out)
            XCTAssertEqual(group["dropped_layers"] as! [Int], [1, 3])
            XCTAssertEqual(1 - lost.share, group["energy_kept"] as! Double, accuracy: 1e-5)
            XCTAssertGreaterThan(lost.lost, 0)
        }
    }

    /// Threshold 1 on minimal ranks: nothing cut, the tensors are the input's bytes.
    func testThresholdOneKeepsTheTensorsBitForBit() throws {
        for spec in [Self.tucker(layers: 3), Self.cp(layers: 3)] {
            let tensors = try writeInputs(spec, layers: 3)
            let run = try sandbox.adaptc("prune", "prune-tc.adapt.yaml", "--adapter", "adapter.safetensors", "--calib", "calib.safetensors",
                                         "--levels", "rank", "--threshold", "1", "-o", "same")
            XCTAssertEqual(run.status, 0, "\(run)")
            let pruned = try SafetensorsFile.read(path: sandbox.path("same/prune-tc.safetensors"))
            for (key, values) in tensors { XCTAssertEqual(try pruned.floats(key).map(\.bitPattern), values.map(\.bitPattern), key) }
            let text = try String(contentsOfFile: sandbox.path("same/prune-tc.adapt.yaml"), encoding: .utf8)
            XCTAssertEqual(text, spec)
            try FileManager.default.removeItem(atPath: sandbox.path("same"))
        }
    }

    func testBadInputIsOneLineAndWritesNothing() throws {
        for (structure, spec) in [("tucker", Self.tucker(layers: 3)), ("cp", Self.cp(layers: 3))] {
            try writeInputs(spec, layers: 3)
            try sandbox.assertBadCalibrationRefused(spec: "prune-tc.adapt.yaml", pairs: Self.pairs(3), seed: 93, context: structure)
            // A flow-style adapter list: the line editor cannot rewrite the group's ranks, and says so.
            let group = structure == "cp" ? "{name: tk, structure: cp, modules: [q, v], factor: {in: [4, 3]}, rank: 8, alpha: 10}"
                : "{name: tk, structure: tucker, modules: [q, v], factor: {out: [3, 4]}, order: [out.1, layer, in, module, out.0], "
                + "ranks: {layer: 2, module: full, out.0: 3, out.1: 4, in: 5}, alpha: 10}"
            try sandbox.write(Self.model(3, flow: true) + "\nadapters: [\(group)]\n", to: "flow.adapt.yaml")
            let before = sandbox.listing()
            let result = try sandbox.adaptc("prune", "flow.adapt.yaml", "--adapter", "adapter.safetensors", "--calib", "calib.safetensors",
                                            "--levels", "rank", "-o", "f")
            XCTAssertEqual(result.status, 1, "\(structure) \(result)")
            XCTAssertEqual(result.stderrLines.count, 1, "\(result)")
            XCTAssertTrue(result.stderr.contains("block list"), "\(result)")
            XCTAssertEqual(sandbox.listing(), before)
        }
    }

    /// A Tucker group written with a uniform `rank:` gets a `ranks:` mapping in its place.
    func testUniformRankIsRewrittenAsAMapping() throws {
        let spec = Self.tucker(layers: 3).replacingOccurrences(of: "ranks: {layer: 2, module: full, out.0: 3, out.1: 4, in: 5}", with: "rank: 3")
        try writeInputs(spec, layers: 3)
        let run = try sandbox.adaptc("prune", "prune-tc.adapt.yaml", "--adapter", "adapter.safetensors", "--calib", "calib.safetensors",
                                     "--levels", "rank", "--threshold", "0.8", "-o", "u")
        XCTAssertEqual(run.status, 0, "\(run)")
        let text = try String(contentsOfFile: sandbox.path("u/prune-tc.adapt.yaml"), encoding: .utf8)
        XCTAssertFalse(text.contains("rank: 3"), text)
        XCTAssertTrue(text.contains("    ranks:  # data-weighted Tucker rounding") && text.contains("      out.1: "), text)
        XCTAssertEqual(try sandbox.adaptc("check", "u/prune-tc.adapt.yaml").status, 0)
    }
}
