import AdaptRuntime
import Foundation
import XCTest

/// The way the app ships a pruned adapter: `adaptc prune`'s spec compiled by
/// AdaptcPlugin (Tests/MiniLMTests/Pruned/, copied there by
/// Fixtures/prune/make_prune_fixtures.sh) and prune's adapter file loaded by the
/// generated `init(weights:)`. Every pair's ΔW through that generated code
/// equals `adaptc materialize` of the same pruned spec and file (the
/// interpreter, fixture *.pruned-delta.safetensors).
final class PrunedAdapterTests: XCTestCase {
    func testPrunedTensorTrainThroughGeneratedCodeEqualsMaterialize() throws {
        try check(TinyPrunedTTAdapter.self, stem: "tiny-tt")
    }

    func testPrunedLoraThroughGeneratedCodeEqualsMaterialize() throws {
        try check(TinyPrunedLoraAdapter.self, stem: "tiny-lora")
    }

    private func check<Adapter: GeneratedAdapter>(_ type: Adapter.Type, stem: String) throws {
        let folder = TestFiles.fixtures + "/prune/"
        let adapter = try Adapter(weights: SafetensorsFile.read(path: folder + stem + ".pruned.safetensors"), threads: 2)
        let deltas = try SafetensorsFile.read(path: folder + stem + ".pruned-delta.safetensors")
        XCTAssertLessThan(Adapter.parameterCount, try SafetensorsFile.read(path: folder + stem + ".adapter.safetensors")
            .tensors.reduce(0) { $0 + $1.shape.reduce(1, *) }, "prune should have made it smaller")
        var checked = 0
        for entry in deltas.tensors {
            let dot = entry.name.firstIndex(of: ".")!
            let layer = Int(entry.name[..<dot])!, name = String(entry.name[entry.name.index(after: dot)...])
            let module = Adapter.Module.allCases.first { Adapter.moduleName($0) == name }!
            let expected = try deltas.floats(entry.name)
            let delta = try adapter.materialize(layer: layer, module: module)
            XCTAssertGreaterThan(expected.map(abs).max()!, 1e-3, "\(entry.name): ΔW should not be zero")
            XCTAssertLessThanOrEqual(maxDifference(delta, expected), 1e-5, "\(stem) \(entry.name)")
            checked += 1
        }
        XCTAssertEqual(checked, 6, "every pair of the 3 layers × 2 maps")
    }
}
