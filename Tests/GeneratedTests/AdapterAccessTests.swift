import XCTest
import AdaptRuntime
import GeneratedAdapters
import AdaptTestSupport

/// The surface an app developer meets: error values a caller can switch on,
/// array forms of every operation, scoped and copied access to the buffers.
final class AdapterAccessTests: XCTestCase {
    func testErrorsCarryTheirValues() throws {
        let adapter = TinyQvAdapter(threads: 1)
        XCTAssertThrowsError(try adapter.forward(layer: 0, module: .attentionSelfKey, x: [Float](repeating: 0, count: 64), rows: 1)) {
            XCTAssertEqual($0 as? AdapterError, .unknownPair(spec: "TinyQv", layer: 0, module: "attention.self.key"))
        }
        XCTAssertThrowsError(try adapter.forward(layer: 9, module: .attentionSelfQuery, x: [Float](repeating: 0, count: 64), rows: 1)) {
            XCTAssertEqual($0 as? AdapterError, .unknownPair(spec: "TinyQv", layer: 9, module: "attention.self.query"))
        }
        XCTAssertThrowsError(try adapter.forward(layer: 0, module: .attentionSelfQuery, x: [Float](repeating: 0, count: 63), rows: 1)) {
            XCTAssertEqual($0 as? AdapterError, .shapeMismatch(spec: "TinyQv", argument: "x", count: 63, expected: 64))
            XCTAssertEqual(($0 as? AdapterError)?.message, "TinyQv: x has 63 elements, expected 64")
        }
        XCTAssertThrowsError(try adapter.merged(layer: 0, module: .attentionSelfQuery, weight: [1, 2])) {
            XCTAssertEqual($0 as? AdapterError, .shapeMismatch(spec: "TinyQv", argument: "W", count: 2, expected: 4096))
        }
        XCTAssertThrowsError(try adapter.setParameterValues([1])) {
            XCTAssertEqual($0 as? AdapterError, .parameterCountMismatch(count: 1, expected: TinyQvAdapter.parameterCount))
        }
    }

    func testArrayFormsAgreeWithBufferForms() throws {
        var random = TestRandom(seed: 51)
        let adapter = TinyQvAdapter(threads: 1)
        let values = random.floats(TinyQvAdapter.parameterCount, bound: 0.5)
        try adapter.setParameterValues(values)
        XCTAssertEqual(adapter.parameterValues, values)
        let x = random.floats(3 * 64)
        let fused = try adapter.forward(layer: 2, modules: [.attentionSelfQuery, .attentionSelfValue], x: x, rows: 3)
        XCTAssertEqual(fused.count, 2)
        assertClose(fused[0], try adapter.forward(layer: 2, module: .attentionSelfQuery, x: x, rows: 3).map(Double.init), "fused q")
        assertClose(fused[1], try adapter.forward(layer: 2, module: .attentionSelfValue, x: x, rows: 3).map(Double.init), "fused v")
        let dys = [random.floats(3 * 64), random.floats(3 * 64)]
        adapter.zeroGradients()
        let fusedDx = try adapter.backward(layer: 2, modules: [.attentionSelfQuery, .attentionSelfValue], x: x, dys: dys, rows: 3)
        let fusedGradients = adapter.gradientValues
        adapter.zeroGradients()
        var dx = try adapter.backward(layer: 2, module: .attentionSelfQuery, x: x, dy: dys[0], rows: 3)
        dx = try adapter.backward(layer: 2, module: .attentionSelfValue, x: x, dy: dys[1], rows: 3, dx: dx)
        assertClose(fusedDx, dx.map(Double.init), "fused dx")
        assertClose(fusedGradients, adapter.gradientValues.map(Double.init), "fused parameter gradients")
        let weight = random.floats(64 * 64)
        let delta = try adapter.materialize(layer: 2, module: .attentionSelfValue)
        let merged = try adapter.merged(layer: 2, module: .attentionSelfValue, weight: weight)
        XCTAssertEqual(merged, zip(weight, delta).map { $0 + $1 })
        XCTAssertEqual(try adapter.merged(layer: 2, module: .attentionSelfValue, weight: merged, unmerge: true).count, weight.count)
        let norm = adapter.withGradients { $0.count }
        XCTAssertEqual(norm, TinyQvAdapter.parameterCount)
    }

    func testSetParameterValuesReprepares() throws {
        var random = TestRandom(seed: 53)
        let adapter = MetaTTBertAdapter(threads: 1)
        let x = random.floats(768)
        try adapter.setParameterValues(random.floats(MetaTTBertAdapter.parameterCount, bound: 0.5))
        _ = try adapter.forward(layer: 1, module: .value, x: x, rows: 1)
        let second = random.floats(MetaTTBertAdapter.parameterCount, bound: 0.5)
        try adapter.setParameterValues(second)
        let fresh = MetaTTBertAdapter(threads: 1)
        try fresh.setParameterValues(second)
        XCTAssertEqual(try adapter.forward(layer: 1, module: .value, x: x, rows: 1), try fresh.forward(layer: 1, module: .value, x: x, rows: 1))
    }
}
