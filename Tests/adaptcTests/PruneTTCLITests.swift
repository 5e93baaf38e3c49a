import AdaptRuntime
import AdaptcCore
import Foundation
import AdaptTestSupport
import XCTest

/// `adaptc prune` on a tensor-train group (data-weighted TT-rounding, DESIGN
/// §4): the pruned spec's `ranks:` check and compile, the pruned cores load,
/// materialize gives the rounded train's ΔW (a naive contraction of the pruned
/// cores here), eval on the calibration rows loses what the report says, and
/// bad input is one line with nothing written.
final class PruneTTCLITests: XCTestCase {
    private var sandbox: CLISandbox!

    override func setUpWithError() throws { sandbox = try CLISandbox() }
    override func tearDown() { sandbox?.remove() }

    static var spec: String { spec(layers: 3) }
    static func spec(layers: Int) -> String { """
        adaptc: 1
        name: PruneTt
        model:
          layers: \(layers)
          modules:
            q: [12, 12]
            v: [12, 12]
        adapters:
          - name: tt   # a shared train
            structure: tensor-train
            modules: [q, v]
            factor: {out: [3, 4], in: [4, 3]}
            order: [out.0, layer, module, out.1, in]
            rank: 5
            alpha: 10
        """
    }

    static func pairs(_ layers: Int) -> [Pair] { (0..<layers).flatMap { l in ["q", "v"].map { Pair(layer: l, module: $0) } } }
    static var pairs: [Pair] { pairs(3) }

    /// Random cores whose bond components decay (slice b of every bond scaled by
    /// 1/(1+b)²), so a threshold below 1 cuts; calibration rows per pair.
    @discardableResult
    func writeInputs(rows: Int = 30, layers: Int = 3, weakLayers: Set<Int> = [], heldOut: Int = 0) throws -> (CheckedSpec, [String: [Float]]) {
        let path = try sandbox.write(Self.spec(layers: layers), to: "prune-tt.adapt.yaml")
        let (checked, plan) = try SpecLoader.loadPlanned(path: path)
        var random = TestRandom(seed: 71)
        var writer = SafetensorsWriter(metadata: AdapterFiles.metadata(checked))
        var tensors: [String: [Float]] = [:]
        for p in plan.parameters {
            let right = p.shape[2]
            var core = random.floats(p.count)
            for i in core.indices { core[i] /= Float((1 + i % right) * (1 + i % right)) }
            // The layer core (mode 1 of the order): weak layers' slices a hundred times smaller.
            if p.key == "tt.core.1" {
                for i in core.indices where weakLayers.contains((i / right) % layers) { core[i] *= 0.01 }
            }
            tensors[p.key] = core
            writer.add(p.key, floats: core, shape: p.shape)
        }
        try writer.write(to: sandbox.path("adapter.safetensors"))
        var calib = SafetensorsWriter(), held = SafetensorsWriter(), r = TestRandom(seed: 72)
        for pair in Self.pairs(layers) {
            // Rows mostly in three directions: far from white. Held-out rows
            // (`heldOut` more per pair) come from the same distribution.
            let basis = r.floats(3 * 12), all = rows + heldOut
            var x = [Float](repeating: 0, count: all * 12)
            for n in 0..<all { let c = r.floats(3); for i in 0..<12 { x[n * 12 + i] = 0.02 * r.uniform() + (0..<3).reduce(0) { $0 + c[$1] * basis[$1 * 12 + i] } } }
            calib.add(pair.key, floats: Array(x[..<(rows * 12)]), shape: [rows, 12])
            if heldOut > 0 { held.add(pair.key, floats: Array(x[(rows * 12)...]), shape: [heldOut, 12]) }
        }
        try calib.write(to: sandbox.path("calib.safetensors"))
        if heldOut > 0 { try held.write(to: sandbox.path("heldout.safetensors")) }
        return (checked, tensors)
    }

    /// ΔW[l, m] `[out, in]` of a train by the definition, read off its resolved modes.
    static func referenceDelta(_ group: ResolvedGroup, cores: [String: [Float]], layer: Int, module: Int, scale: Double) -> [Double] {
        let modes = group.modes
        let sizes = modes.map(\.size)
        // Bond ranks from the core sizes: r_{k+1} = count_k / (r_k · n_k).
        var bond = [1]
        for k in modes.indices { bond.append(cores["\(group.name).core.\(k)"]!.count / (bond[k] * sizes[k])) }
        var delta = [Double](repeating: 0, count: 144)
        let total = sizes.reduce(1, *)
        for p in 0..<total {
            var digits = [Int](repeating: 0, count: sizes.count), rest = p
            for k in sizes.indices.reversed() { digits[k] = rest % sizes[k]; rest /= sizes[k] }
            var l = 0, m = 0, o = 0, i = 0
            let outs = modes.indices.filter { modes[$0].name.kind == .out }.sorted { modes[$0].name < modes[$1].name }
            let ins = modes.indices.filter { modes[$0].name.kind == .in }.sorted { modes[$0].name < modes[$1].name }
            for k in modes.indices where modes[k].name.kind == .layer { l = digits[k] }
            for k in modes.indices where modes[k].name.kind == .module { m = digits[k] }
            guard l == layer, m == module else { continue }
            for k in outs { o = o * sizes[k] + digits[k] }
            for k in ins { i = i * sizes[k] + digits[k] }
            var v = [1.0]
            for k in sizes.indices {
                let core = cores["\(group.name).core.\(k)"]!
                var next = [Double](repeating: 0, count: bond[k + 1])
                for a in 0..<bond[k] { for b in 0..<bond[k + 1] { next[b] += v[a] * Double(core[(a * sizes[k] + digits[k]) * bond[k + 1] + b]) } }
                v = next
            }
            delta[o * 12 + i] = scale * v[0]
        }
        return delta
    }

    func energyLost(_ original: String, _ pruned: String) throws -> (lost: Double, total: Double) {
        let a = try SafetensorsFile.read(path: sandbox.path(original)), b = try SafetensorsFile.read(path: sandbox.path(pruned))
        var total = 0.0, error = 0.0
        for entry in a.tensors {
            for (u, v) in zip(try a.floats(entry.name), try b.floats(entry.name)) {
                total += Double(u) * Double(u); error += (Double(u) - Double(v)) * (Double(u) - Double(v))
            }
        }
        return (error, total)
    }

    func testPrunedTrainChecksCompilesAndLosesWhatTheReportSays() throws {
        try writeInputs()
        for scope in ["pair", "global"] {
            let out = "pruned-\(scope)"
            let run = try sandbox.adaptc("prune", "prune-tt.adapt.yaml", "--adapter", "adapter.safetensors", "--calib", "calib.safetensors",
                                         "--levels", "rank", "--threshold", "0.9", "--scope", scope, "-o", out)
            XCTAssertEqual(run.status, 0, "\(run)")
            print(run.stdout)
            XCTAssertTrue(run.stdoutLines.contains { $0.hasPrefix("tt") && $0.contains("bond ranks") }, "\(run)")
            let text = try String(contentsOfFile: sandbox.path("\(out)/prune-tt.adapt.yaml"), encoding: .utf8)
            XCTAssertTrue(text.contains("- name: tt   # a shared train"), text)
            XCTAssertTrue(text.contains("ranks:  # data-weighted TT-rounding"), text)
            XCTAssertTrue(text.contains("# bond 1 (out.0 | layer module out.1 in.0 in.1)"), text)
            XCTAssertFalse(text.contains("rank: 5"), text)
            XCTAssertEqual(try sandbox.adaptc("check", "\(out)/prune-tt.adapt.yaml").status, 0)
            let compile = try sandbox.adaptc("compile", "\(out)/prune-tt.adapt.yaml", "-o", "gen-\(scope)")
            XCTAssertEqual(compile.status, 0, "\(compile)")

            // materialize of the pruned adapter is the rounded train's ΔW, contracted here from the written cores.
            let pruned = try SafetensorsFile.read(path: sandbox.path("\(out)/prune-tt.safetensors"))
            var cores: [String: [Float]] = [:]
            for entry in pruned.tensors { cores[entry.name] = try pruned.floats(entry.name) }
            let newChecked = try SpecLoader.load(path: sandbox.path("\(out)/prune-tt.adapt.yaml"))
            let group = newChecked.groups[0]
            let scale = group.scale(layer: 0, module: "q")
            XCTAssertEqual(try sandbox.adaptc("materialize", "\(out)/prune-tt.adapt.yaml", "--adapter", "\(out)/prune-tt.safetensors",
                                              "-o", "d-\(scope).safetensors").status, 0)
            let deltas = try SafetensorsFile.read(path: sandbox.path("d-\(scope).safetensors"))
            for pair in Self.pairs {
                let want = Self.referenceDelta(group, cores: cores, layer: pair.layer, module: pair.module == "q" ? 0 : 1, scale: scale)
                let got = try deltas.floats(pair.key).map(Double.init)
                let worst = zip(got, want).map { abs($0 - $1) }.max()!, size = want.map(abs).max()!
                XCTAssertLessThan(worst / size, 1e-5, "\(scope) \(pair.key)")
            }

            // eval on the calibration rows loses what report.json says (float32 eval: 1e-5).
            XCTAssertEqual(try sandbox.adaptc("eval", "prune-tt.adapt.yaml", "--adapter", "adapter.safetensors", "--input", "calib.safetensors",
                                              "-o", "y.safetensors").status, 0)
            XCTAssertEqual(try sandbox.adaptc("eval", "\(out)/prune-tt.adapt.yaml", "--adapter", "\(out)/prune-tt.safetensors",
                                              "--input", "calib.safetensors", "-o", "y-\(scope).safetensors").status, 0)
            let (lost, total) = try energyLost("y.safetensors", "y-\(scope).safetensors")
            let report = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: sandbox.path("\(out)/report.json")))) as! [String: Any]
            let tt = (report["groups"] as! [[String: Any]])[0]
            XCTAssertEqual(1 - lost / total, tt["energy_kept"] as! Double, accuracy: 1e-5, scope)
            XCTAssertEqual(tt["energy_total"] as! Double, total, accuracy: 1e-5 * total, scope)
            let bonds = tt["bonds"] as! [[String: Any]]
            XCTAssertEqual(bonds.count, 5)
            XCTAssertTrue(bonds.contains { ($0["rank_after"] as! Int) < ($0["rank_before"] as! Int) }, "\(scope): something must be cut")
            XCTAssertTrue(bonds.allSatisfy { ($0["energies"] as! [Double]).count >= ($0["rank_after"] as! Int) })
            if scope == "global" { XCTAssertLessThanOrEqual(lost / total, 0.1 + 1e-5) }
            let svg = try String(contentsOfFile: sandbox.path("\(out)/report.svg"), encoding: .utf8)
            XCTAssertTrue(svg.contains("data-weighted spectra per bond") && svg.contains("bond 5: in.0 | in.1"), scope)
            XCTAssertLessThan(report["parameters_after"] as! Int, report["parameters_before"] as! Int)
        }
    }

    /// The acceptance's held-out check: rows drawn from one distribution,
    /// 200 per pair to prune on and 8 × 200 held out; eval of the pruned train
    /// on each held-out subset keeps a share of the output energy, and the share
    /// report.json says (measured on the calibration rows) lies within three
    /// standard deviations of those subsets' shares around their mean — the
    /// noise of a set of rows the calibration's size (the calibration set is one
    /// such draw). The test prints the figures.
    func testHeldOutRowsLoseWhatTheReportSaysWithinTheirNoise() throws {
        let (subsets, size) = (8, 200)
        try writeInputs(rows: size, heldOut: subsets * size)
        let run = try sandbox.adaptc("prune", "prune-tt.adapt.yaml", "--adapter", "adapter.safetensors", "--calib", "calib.safetensors",
                                     "--levels", "rank", "--threshold", "0.9", "-o", "pruned")
        XCTAssertEqual(run.status, 0, "\(run)")
        XCTAssertEqual(try sandbox.adaptc("eval", "prune-tt.adapt.yaml", "--adapter", "adapter.safetensors", "--input", "heldout.safetensors",
                                          "-o", "y.safetensors").status, 0)
        XCTAssertEqual(try sandbox.adaptc("eval", "pruned/prune-tt.adapt.yaml", "--adapter", "pruned/prune-tt.safetensors",
                                          "--input", "heldout.safetensors", "-o", "y-pruned.safetensors").status, 0)
        let a = try SafetensorsFile.read(path: sandbox.path("y.safetensors")), b = try SafetensorsFile.read(path: sandbox.path("y-pruned.safetensors"))
        var total = [Double](repeating: 0, count: subsets), lost = total
        for entry in a.tensors {
            let (u, v) = (try a.floats(entry.name), try b.floats(entry.name))
            let width = u.count / (subsets * size)
            for (i, (p, q)) in zip(u, v).enumerated() {
                let s = i / width / size
                total[s] += Double(p) * Double(p)
                lost[s] += (Double(p) - Double(q)) * (Double(p) - Double(q))
            }
        }
        let kept = zip(lost, total).map { 1 - $0 / $1 }
        let mean = kept.reduce(0, +) / Double(subsets)
        let spread = (kept.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(subsets - 1)).squareRoot()
        let report = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: sandbox.path("pruned/report.json")))) as! [String: Any]
        let reported = (report["groups"] as! [[String: Any]])[0]["energy_kept"] as! Double
        print("held-out: reported energy kept \(reported); held-out subsets of \(size) rows: mean \(mean), sd \(spread), min \(kept.min()!), max \(kept.max()!)")
        XCTAssertLessThan(reported, 1 - 1e-3, "something must be cut for the check to mean anything")
        XCTAssertGreaterThan(spread, 0)
        XCTAssertLessThanOrEqual(abs(reported - mean), 3 * spread, "reported \(reported), held-out \(kept)")
    }

    /// Layer level on the train: the weak layers leave its `layers:` (their
    /// slices cut from the layer core) for `tt_shared`, the kept layers' ΔW are
    /// unchanged (threshold-1 rounding only), and eval loses what the report says.
    func testLayerLevelCutsWeakLayersIntoASharedGroup() throws {
        try writeInputs(layers: 4, weakLayers: [1, 3])
        let run = try sandbox.adaptc("prune", "prune-tt.adapt.yaml", "--adapter", "adapter.safetensors", "--calib", "calib.safetensors",
                                     "--levels", "layer", "--threshold", "0.95", "-o", "l")
        XCTAssertEqual(run.status, 0, "\(run)")
        let text = try String(contentsOfFile: sandbox.path("l/prune-tt.adapt.yaml"), encoding: .utf8)
        XCTAssertTrue(text.contains("layers: [0, 2]"), text)
        XCTAssertTrue(text.contains("- name: tt_shared"), text)
        XCTAssertEqual(try sandbox.adaptc("check", "l/prune-tt.adapt.yaml").status, 0)
        let compile = try sandbox.adaptc("compile", "l/prune-tt.adapt.yaml", "-o", "gen")
        XCTAssertEqual(compile.status, 0, "\(compile)")
        for (spec, adapter, out) in [("prune-tt.adapt.yaml", "adapter.safetensors", "d"), ("l/prune-tt.adapt.yaml", "l/prune-tt.safetensors", "dl")] {
            XCTAssertEqual(try sandbox.adaptc("materialize", spec, "--adapter", adapter, "-o", "\(out).safetensors").status, 0)
            XCTAssertEqual(try sandbox.adaptc("eval", spec, "--adapter", adapter, "--input", "calib.safetensors", "-o", "y\(out).safetensors").status, 0)
        }
        let before = try SafetensorsFile.read(path: sandbox.path("d.safetensors")), after = try SafetensorsFile.read(path: sandbox.path("dl.safetensors"))
        for pair in Self.pairs(4) where [0, 2].contains(pair.layer) {
            let a = try before.floats(pair.key), b = try after.floats(pair.key)
            let worst = zip(a, b).map { abs($0 - $1) }.max()!, size = a.map(abs).max()!
            XCTAssertLessThan(worst / size, 1e-5, pair.key)
        }
        // Every ΔW of this order shares the in-side of bond (out.1 | in), rank 5: the
        // mean of the dropped layers' ΔW has rank ≤ 5, and tt_shared (rank 5) is that mean exactly.
        for module in ["q", "v"] {
            let mean = zip(try before.floats("1.\(module)"), try before.floats("3.\(module)")).map { ($0 + $1) / 2 }
            for layer in [1, 3] {
                let got = try after.floats("\(layer).\(module)")
                let worst = zip(got, mean).map { abs($0 - $1) }.max()!, size = mean.map(abs).max()!
                XCTAssertLessThan(worst / size, 1e-4, "\(layer).\(module)")
            }
        }
        let (lost, total) = try energyLost("yd.safetensors", "ydl.safetensors")
        let report = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: sandbox.path("l/report.json")))) as! [String: Any]
        let tt = (report["groups"] as! [[String: Any]])[0]
        XCTAssertEqual(tt["dropped_layers"] as! [Int], [1, 3])
        XCTAssertEqual(1 - lost / total, tt["energy_kept"] as! Double, accuracy: 1e-5)
        XCTAssertGreaterThan(lost, 0)
    }

    /// Threshold 1 on a train of minimal ranks: nothing cut, the cores are the input's bytes.
    func testThresholdOneKeepsTheCoresBitForBit() throws {
        let (_, tensors) = try writeInputs()
        let run = try sandbox.adaptc("prune", "prune-tt.adapt.yaml", "--adapter", "adapter.safetensors", "--calib", "calib.safetensors",
                                     "--levels", "rank", "--threshold", "1", "-o", "same")
        XCTAssertEqual(run.status, 0, "\(run)")
        let pruned = try SafetensorsFile.read(path: sandbox.path("same/prune-tt.safetensors"))
        for (key, values) in tensors { XCTAssertEqual(try pruned.floats(key).map(\.bitPattern), values.map(\.bitPattern), key) }
        let text = try String(contentsOfFile: sandbox.path("same/prune-tt.adapt.yaml"), encoding: .utf8)
        XCTAssertTrue(text.contains("rank: 5"), text)
    }

    func testBadCalibrationIsOneLineAndWritesNothing() throws {
        try writeInputs()
        try sandbox.assertBadCalibrationRefused(spec: "prune-tt.adapt.yaml", pairs: Self.pairs, seed: 73, context: "tensor-train")
        // A flow-style adapter list: the line editor cannot rewrite the train's ranks, and says so.
        let flow = """
            adaptc: 1
            name: PruneTt
            model:
              layers: 3
              modules: {q: [12, 12], v: [12, 12]}
            adapters: [{name: tt, structure: tensor-train, modules: [q, v], factor: {out: [3, 4], in: [4, 3]}, order: [out.0, layer, module, out.1, in], rank: 5, alpha: 10}]
            """
        try sandbox.write(flow, to: "flow.adapt.yaml")
        let before = sandbox.listing()
        let result = try sandbox.adaptc("prune", "flow.adapt.yaml", "--adapter", "adapter.safetensors", "--calib", "calib.safetensors",
                                        "--levels", "rank", "-o", "f")
        XCTAssertEqual(result.status, 1, "\(result)")
        XCTAssertEqual(result.stderrLines.count, 1, "\(result)")
        XCTAssertTrue(result.stderr.contains("block list"), "\(result)")
        XCTAssertEqual(sandbox.listing(), before)
    }
}
