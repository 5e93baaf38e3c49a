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
}
