import XCTest
import Foundation
import AdaptRuntime
@testable import AdaptcCore
import GeneratedAdapters
import AdaptTestSupport

/// An adapter saved by an app reads back bit for bit through `init(weights:)`,
/// and `adaptc eval` (the interpreter, another executor) reproduces the app's
/// forward from the saved file.
final class AdapterSavingTests: XCTestCase {
    func testLoRARoundTrip() throws { try roundTrip(TinyQvAdapter.self, "tiny-qv.adapt.yaml") }
    func testTensorTrainRoundTrip() throws { try roundTrip(MetaTTBertAdapter.self, "metatt-bert.adapt.yaml") }

    func roundTrip<Adapter: GeneratedAdapter>(_ type: Adapter.Type, _ spec: String) throws {
        let folder = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let adapter = Adapter(threads: 1)
        var random = TestRandom(seed: 31)
        let parameters = adapter.parameters
        for i in parameters.indices { parameters[i] = random.uniform(0.5) }
        let path = folder + "/trained.safetensors"
        try adapter.save(to: path, metadata: ["app.note": "kept", "adaptc.hash": "overridden?"])

        let file = try SafetensorsFile.read(path: path)
        XCTAssertEqual(file.metadata["adaptc.spec"], Adapter.specName)
        XCTAssertEqual(file.metadata["adaptc.hash"], Adapter.specHash)
        XCTAssertEqual(file.metadata["adaptc.version"], SwiftEmitter.adaptcVersion)
        XCTAssertEqual(file.metadata["app.note"], "kept")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder), ["trained.safetensors"], "no temporary file left")

        let loaded = try Adapter(weights: file, threads: 1)
        XCTAssertEqual(Array(loaded.parameters).map(\.bitPattern), Array(adapter.parameters).map(\.bitPattern))

        // `adaptc eval` on the saved file against the app's forward, every pair of two layers.
        let checked = try SpecLoader.load(path: specPath(spec))
        let plan = try XCTUnwrap(Planner.plan(checked).0)
        var inputs = SafetensorsWriter()
        var expected: [String: [Float]] = [:]
        let n = 3
        for pair in plan.pairs where pair.layer < 2 {
            let module = Adapter.Module.allCases.first { Adapter.moduleName($0) == pair.module }!
            let x = random.floats(n * pair.inFeatures)
            inputs.add("\(pair.layer).\(pair.module)", floats: x, shape: [n, pair.inFeatures])
            expected["\(pair.layer).\(pair.module)"] = try adapter.forward(layer: pair.layer, module: module, x: x, rows: n)
        }
        XCTAssertFalse(expected.isEmpty)
        try inputs.write(to: folder + "/x.safetensors")
        _ = try EvalCommand.eval(specPath: specPath(spec), adapterPath: path, inputPath: folder + "/x.safetensors",
                                 output: folder + "/y.safetensors", threads: 1)
        let outputs = try SafetensorsFile.read(path: folder + "/y.safetensors")
        for (key, y) in expected {
            assertClose(try outputs.floats(key), y.map(Double.init), "\(Adapter.specName) eval \(key)", tolerance: 1e-6)
        }
    }

    func testNonFiniteParameterIsNotSaved() throws {
        let folder = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let adapter = TinyQvAdapter(threads: 1)
        adapter.parameters[1030] = .nan
        XCTAssertThrowsError(try adapter.save(to: folder + "/bad.safetensors")) {
            XCTAssertEqual($0 as? AdapterError, .nonFiniteParameter(key: "attn.0.attention.self.query.B", index: 1030))
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder), [])
    }

    func testFileOfAnotherSpecIsRefusedWithItsValues() throws {
        let folder = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try TinyQvAdapter(threads: 1).save(to: folder + "/tiny.safetensors")
        let file = try SafetensorsFile.read(path: folder + "/tiny.safetensors")
        XCTAssertThrowsError(try BertQvAdapter(weights: file)) {
            XCTAssertEqual($0 as? AdapterError, .otherSpec(path: file.path, fileHash: TinyQvAdapter.specHash,
                                                           spec: BertQvAdapter.specName, specHash: BertQvAdapter.specHash))
        }
    }

    func temporaryFolder() throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("adaptc-save-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }
}
