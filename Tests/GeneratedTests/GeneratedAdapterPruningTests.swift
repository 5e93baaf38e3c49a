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
}
