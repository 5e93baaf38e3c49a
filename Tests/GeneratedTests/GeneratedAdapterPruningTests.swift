import AdaptRuntime
import AdaptTestSupport
import GeneratedAdapters
import XCTest

/// An app's view of pruning: factors read from a generated adapter's buffer
/// give the importance its own forward measures, Σ_rows ‖forward(x)‖².
final class GeneratedAdapterPruningTests: XCTestCase {
    func testImportanceOfAGeneratedAdapterIsTheEnergyOfItsForward() throws {
        let adapter = TinyQvAdapter(threads: 1)
        var random = TestRandom(seed: 51)
        _ = adapter.parameters.update(fromContentsOf: random.floats(TinyQvAdapter.parameterCount, bound: 0.3))
        adapter.prepare()
        let x = random.floats(9 * 64)
        // tiny-qv: alpha 16, rank 8 (3.attention.self.value: rank 4) → s = 2 and 4.
        for (layer, module, scale) in [(0, TinyQvAdapter.Module.attentionSelfQuery, 2.0), (3, .attentionSelfValue, 4.0)] {
            let name = TinyQvAdapter.moduleName(module)
            let factors = try XCTUnwrap(adapter.loraFactors(stem: "attn.\(layer).\(name)", scale: scale))
            let y = try adapter.forward(layer: layer, module: module, x: x, rows: 9)
            let want = y.reduce(0.0) { $0 + Double($1) * Double($1) }
            let got = x.withUnsafeBufferPointer { LoRAImportance.outputEnergy(factors, x: $0, rows: 9) }
            XCTAssertEqual(got, want, accuracy: 1e-5 * want, "\(layer).\(name)")
        }
        XCTAssertNil(adapter.loraFactors(stem: "attn.9.attention.self.query", scale: 1))
    }

    /// An app rounding its own tensor train: `ttCores` read from the buffer and
    /// the modes of its `order` give, as the train's output energy on the rows,
    /// Σ_rows ‖forward(x)‖² over every pair (tt-interleaved: no alpha, s = 1).
    func testTensorTrainEnergyOfAGeneratedAdapterIsTheEnergyOfItsForward() throws {
        let adapter = TTInterleavedAdapter(threads: 1)
        var random = TestRandom(seed: 52)
        _ = adapter.parameters.update(fromContentsOf: random.floats(TTInterleavedAdapter.parameterCount, bound: 0.5))
        adapter.prepare()
        let (cores, ranks) = try XCTUnwrap(adapter.ttCores(group: "mlp"))
        XCTAssertEqual(cores.count, 6)
        let modes = [TTMode(.layer, size: 4), TTMode(.module, size: 2), TTMode(.out, size: 8, factor: 0), TTMode(.in, size: 6, factor: 0),
                     TTMode(.out, size: 8, factor: 1), TTMode(.in, size: 8, factor: 1)]
        var rows: [[Float]] = [], counts: [Int] = [], want = 0.0
        for layer in 0..<4 {
            for module in TTInterleavedAdapter.Module.allCases {
                let x = random.floats(7 * 48)
                let y = try adapter.forward(layer: layer, module: module, x: x, rows: 7)
                want += y.reduce(0.0) { $0 + Double($1) * Double($1) }
                rows.append(x)
                counts.append(7)
            }
        }
        let calibration = TTCalibration(rows: rows, counts: counts, layers: 4, modules: 2, inFeatures: 48)
        let result = TTRounding.round(cores: cores, ranks: ranks, modes: modes, calibration: calibration, scale: 1,
                                      options: .init(threshold: 0.9))
        XCTAssertEqual(result.totalEnergy, want, accuracy: 1e-5 * want)
        XCTAssertLessThanOrEqual(result.bondRanks.reduce(0, +), ranks.reduce(0, +))
        XCTAssertNil(adapter.ttCores(group: "nope"))
    }

    /// An app pruning its own Tucker group: `tuckerTensors` read from the buffer
    /// give, as the group's output energy on the rows, Σ_rows ‖forward(x)‖²
    /// (lotr-tucker: alpha 16, largest non-full rank 16, s = 1), and the rounding
    /// at threshold 0.9 keeps at least 90% of it per mode.
    func testTuckerEnergyOfAGeneratedAdapterIsTheEnergyOfItsForward() throws {
        let adapter = LoTRTuckerAdapter(threads: 1)
        var random = TestRandom(seed: 53)
        _ = adapter.parameters.update(fromContentsOf: random.floats(LoTRTuckerAdapter.parameterCount, bound: 0.2))
        adapter.prepare()
        let names = ["layer", "module", "out", "in"]
        let (core, factors) = try XCTUnwrap(adapter.tuckerTensors(group: "qv", modes: names))
        XCTAssertNil(factors[0])
        XCTAssertNil(factors[1])
        let modes = [TTMode(.layer, size: 12), TTMode(.module, size: 2), TTMode(.out, size: 768), TTMode(.in, size: 768)]
        let (rows, counts, want) = try Self.forwardEnergy(layers: 12, modules: 2, inFeatures: 768, random: &random) { layer, module, x in
            try adapter.forward(layer: layer, module: LoTRTuckerAdapter.Module.allCases[module], x: x, rows: 3)
        }
        let calibration = TTCalibration(rows: rows, counts: counts, layers: 12, modules: 2, inFeatures: 768)
        let result = TuckerRounding.round(core: core, factors: factors, modes: modes, calibration: calibration, scale: 1,
                                          options: .init(threshold: 0.9))
        XCTAssertEqual(result.totalEnergy, want, accuracy: 1e-4 * want)
        XCTAssertEqual(result.ranks[0], nil)
        XCTAssertNil(adapter.tuckerTensors(group: "nope", modes: names))
    }

    /// The same for a cp group (lorta-cp: alpha 32, R 32, s = 1): `cpFactors`
    /// give the forward's energy, and leave-one-out pruning loses ≤ 1 − T of it.
    func testCPEnergyOfAGeneratedAdapterIsTheEnergyOfItsForward() throws {
        let adapter = LoRTACpAdapter(threads: 1)
        var random = TestRandom(seed: 54)
        _ = adapter.parameters.update(fromContentsOf: random.floats(LoRTACpAdapter.parameterCount, bound: 0.2))
        adapter.prepare()
        let names = ["layer", "module", "out", "in"]
        let factors = try XCTUnwrap(adapter.cpFactors(group: "qkv", modes: names))
        let modes = [TTMode(.layer, size: 12), TTMode(.module, size: 3), TTMode(.out, size: 768), TTMode(.in, size: 768)]
        let (rows, counts, want) = try Self.forwardEnergy(layers: 12, modules: 3, inFeatures: 768, random: &random) { layer, module, x in
            try adapter.forward(layer: layer, module: LoRTACpAdapter.Module.allCases[module], x: x, rows: 3)
        }
        let calibration = TTCalibration(rows: rows, counts: counts, layers: 12, modules: 3, inFeatures: 768)
        let result = CPPruning.prune(factors: factors, modes: modes, calibration: calibration, scale: 1, threshold: 0.9)
        XCTAssertEqual(result.totalEnergy, want, accuracy: 1e-4 * want)
        XCTAssertLessThanOrEqual(result.lostEnergy, 0.1 * want + 1e-4 * want)
        XCTAssertNil(adapter.cpFactors(group: "qkv", modes: ["layer", "nope"]))
    }

    /// Three random rows per pair, and the forward's Σ ‖y‖² over all pairs.
    static func forwardEnergy(layers: Int, modules: Int, inFeatures: Int, random: inout TestRandom,
                              forward: (Int, Int, [Float]) throws -> [Float]) rethrows -> ([[Float]], [Int], Double) {
        var rows: [[Float]] = [], counts: [Int] = [], want = 0.0
        for layer in 0..<layers {
            for module in 0..<modules {
                let x = random.floats(3 * inFeatures)
                let y = try forward(layer, module, x)
                want += y.reduce(0.0) { $0 + Double($1) * Double($1) }
                rows.append(x)
                counts.append(3)
            }
        }
        return (rows, counts, want)
    }
}
