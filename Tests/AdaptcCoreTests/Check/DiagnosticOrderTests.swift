import XCTest
@testable import AdaptcCore

/// Out-of-range layers are one diagnostic per place in the spec, and
/// diagnostics that name numbers sort by their value.
final class DiagnosticOrderTests: XCTestCase {
    private func outOfRange(_ layers: [Int]) -> [String] {
        let here = SourceLocation(path: "built", line: 1, column: 1)
        let spec = AdapterSpec(
            path: "built", version: 1, name: "Built",
            model: ModelSpec(layers: 4, modules: [ModelModule(name: "fc", outFeatures: 8, inFeatures: 8, location: here)],
                             location: here),
            groups: [AdapterGroup(name: "fc", structure: .lora, layers: layers, modules: ["fc"], rank: .uniform(2),
                                  location: here)],
            location: here)
        return SpecChecker.check(spec).1.map(\.message)
    }

    func testOutOfRangeLayersAtOnePlaceAreOneDiagnostic() {
        XCTAssertEqual(outOfRange(Array(0..<100_000)), ["layers 4..<100000 are out of range: the model has 4 layers (0..<4)"])
        XCTAssertEqual(outOfRange([0, 12, 9, 100, 10]), ["layers 9, 10, 12 and 100 are out of range: the model has 4 layers (0..<4)"])
        XCTAssertEqual(outOfRange([1, 30, 9, 100, 10, 7, 8]),
                       ["layers 7, 8, 9, 10, 30 and 1 more are out of range: the model has 4 layers (0..<4)"])
        XCTAssertEqual(outOfRange([2, 5]), ["layer 5 is out of range: the model has 4 layers (0..<4)"])
    }

    func testRangeInASpecGivesOneLine() {
        let diagnostics = SpecTestSupport.diagnostics("""
            adaptc: 1
            name: Far
            model: {layers: 32, modules: {q: [8, 8]}}
            adapters:
              - {name: q, structure: lora, layers: "0..<100000", modules: [q], rank: 2}
            """)
        XCTAssertEqual(diagnostics.map(\.description),
                       ["Specs/test.adapt.yaml:5:40: error: layers 32..<100000 are out of range: the model has 32 layers (0..<32)"])
    }

    /// Found by Tools/fuzz spec (> 1 s timeouts, Tests/FuzzCorpus/spec/regression-timeout-far-range.adapt.yaml):
    /// a range past the model was expanded, one source location recorded per
    /// layer, before Check said so. Now Parse says it without expanding, and a
    /// valid range records one location for all its layers.
    func testARangePastTheModelIsNotExpandedAndARangeRecordsOneLocation() throws {
        let (far, farDiagnostics) = SpecTestSupport.parse("""
            adaptc: 1
            name: Far
            model: {layers: 32, modules: {q: [8, 8]}}
            adapters:
              - {name: q, structure: lora, layers: "0..<100000", modules: [q], rank: 2}
              - {name: k, structure: lora, layers: "40...40", modules: [q], rank: 2}
            """)
        XCTAssertNil(far)
        XCTAssertEqual(farDiagnostics.map(\.description), [
            "Specs/test.adapt.yaml:5:40: error: layers 32..<100000 are out of range: the model has 32 layers (0..<32)",
            "Specs/test.adapt.yaml:6:40: error: layer 40 is out of range: the model has 32 layers (0..<32)",
        ])
        // Without a valid model.layers (regression-timeout-far-range-no-model): an error, nothing expanded.
        let (noModel, noModelDiagnostics) = SpecTestSupport.parse("""
            adaptc: 1
            name: Far
            model: {layers: m32, modules: {q: [8, 8]}}
            adapters:
              - {name: q, structure: lora, layers: "0..<100000", modules: [q], rank: 2}
            """)
        XCTAssertEqual(noModelDiagnostics.map(\.message), ["'model.layers' must be an integer, found the string 'm32'"])
        XCTAssertEqual(noModel?.groups.first?.layers ?? [], [])
        let (spec, diagnostics) = SpecTestSupport.parse("""
            adaptc: 1
            name: Wide
            model: {layers: 100000, modules: {q: [8, 8]}}
            adapters:
              - {name: q, structure: lora, layers: "0..<100000", modules: [q], rank: 2}
              - {name: k, structure: lora, layers: [40, 50], modules: [q], rank: 2}
            """)
        XCTAssertEqual(diagnostics, [])
        let groups = try XCTUnwrap(spec).groups
        XCTAssertEqual(groups[0].layers.count, 100_000)
        XCTAssertLessThan(groups[0].keyLocations.count, 20)
        XCTAssertEqual(groups[0].keyLocations["layers[*]"], SourceLocation(path: SpecTestSupport.path, line: 5, column: 40))
        XCTAssertNil(groups[0].keyLocations["layers[0]"])
        XCTAssertEqual(groups[1].location(of: "layers[1]"), SourceLocation(path: SpecTestSupport.path, line: 6, column: 45))
    }

    func testNumbersInMessagesSortByValue() {
        let here = SourceLocation(path: "s", line: 3, column: 4)
        var collector = DiagnosticCollector()
        for message in ["layer 10 x", "layer 9 x", "layer 100 x", "layer 9 w", "a 2.10", "a 2.9", "layer 09 x"] {
            collector.error(message, at: here)
        }
        XCTAssertEqual(collector.sorted.map(\.message),
                       ["a 2.9", "a 2.10", "layer 9 w", "layer 09 x", "layer 9 x", "layer 10 x", "layer 100 x"])
        XCTAssertTrue(NumericOrder.precedes("1.up", "12.down"))
        XCTAssertFalse(NumericOrder.precedes("12.down", "1.up"))
        XCTAssertTrue(NumericOrder.precedes("x", "x1"))
        XCTAssertFalse(NumericOrder.precedes("x", "x"))
    }
}
