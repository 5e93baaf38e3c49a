import XCTest
@testable import AdaptcCore

/// Parse + Check helpers shared by the spec tests.
enum SpecTestSupport {
    static let path = "Specs/test.adapt.yaml"

    static func parse(_ yaml: String) -> (AdapterSpec?, [Diagnostic]) {
        SpecParser.parse(source: yaml, path: path)
    }

    /// Every diagnostic of Parse, then of Check when Parse succeeded, sorted as printed.
    static func diagnostics(_ yaml: String) -> [Diagnostic] {
        let (spec, parseDiagnostics) = parse(yaml)
        guard let spec else { return parseDiagnostics }
        return parseDiagnostics + SpecChecker.check(spec).1
    }

    /// The checked spec of a valid file; fails the test with the diagnostics otherwise.
    static func checked(_ yaml: String, file: StaticString = #filePath, line: UInt = #line) -> CheckedSpec? {
        let (spec, parseDiagnostics) = parse(yaml)
        guard let spec else {
            XCTFail("parse failed: \(parseDiagnostics.map(\.description))", file: file, line: line)
            return nil
        }
        let (checked, diagnostics) = SpecChecker.check(spec)
        XCTAssertNotNil(checked, "check failed: \(diagnostics.map(\.description))", file: file, line: line)
        return checked
    }
}

final class SpecParserTests: XCTestCase {
    let full = """
        adaptc: 1
        name: BertAttention
        model:
          layers: 12
          modules: {query: [768, 768], key: [768, 768], value: [768, 768], attention.output: [768, 3072]}
          weights: {key: "encoder.layer.{layer}.attention.self.{module}.weight"}
        adapters:
          - name: attn
            structure: tensor-train
            layers: all
            modules: [query, key, value]
            factor: {out: [4, 8, 24], in: [4, 8, 24]}
            order: [layer, module, out, in]
            rank: 8
            alpha: 16
            scaling: rslora
            init: {method: tt-svd, svd: randomized, seed: 7, oversampling: 10, power_iterations: 2}
          - name: output
            structure: lora
            layers: [3, 1, 2]
            modules: [attention.output]
            rank: 4
            shared: false
            overrides: {"3.attention.output": {rank: 2, alpha: 8}}
        prune: {threshold: 0.8, levels: [rank], scope: global}
        codegen: {tokens: 64, access: internal}
        """

    func testEveryKeyIsRead() throws {
        let (spec, diagnostics) = SpecTestSupport.parse(full)
        XCTAssertEqual(diagnostics, [])
        let s = try XCTUnwrap(spec)
        XCTAssertEqual(s.path, SpecTestSupport.path)
        XCTAssertEqual(s.version, 1)
        XCTAssertEqual(s.name, "BertAttention")
        XCTAssertEqual(s.adapterTypeName, "BertAttentionAdapter")
        XCTAssertEqual(s.model.layers, 12)
        XCTAssertEqual(s.model.modules.map(\.name), ["query", "key", "value", "attention.output"])
        XCTAssertEqual(s.model.modules[3].outFeatures, 768)
        XCTAssertEqual(s.model.modules[3].inFeatures, 3072)
        XCTAssertEqual(s.model.modules[3].caseName, "attentionOutput")
        XCTAssertEqual(s.model.weightsKey, "encoder.layer.{layer}.attention.self.{module}.weight")

        XCTAssertEqual(s.groups.count, 2)
        let tt = s.groups[0]
        XCTAssertEqual(tt.name, "attn")
        XCTAssertEqual(tt.structure, .tensorTrain)
        XCTAssertEqual(tt.layers, Array(0..<12))
        XCTAssertEqual(tt.modules, ["query", "key", "value"])
        XCTAssertEqual(tt.outFactors, [4, 8, 24])
        XCTAssertEqual(tt.inFactors, [4, 8, 24])
        XCTAssertEqual(tt.order, [.layer, .module, .out, .in])
        XCTAssertEqual(tt.rank, .uniform(8))
        XCTAssertEqual(tt.alpha, 16)
        XCTAssertEqual(tt.scaling, .rslora)
        XCTAssertEqual(tt.initialization, InitSettings(method: .ttSVD, svd: .randomized, seed: 7,
                                                       oversampling: 10, powerIterations: 2))

        let lora = s.groups[1]
        XCTAssertEqual(lora.layers, [3, 1, 2], "Parse keeps layers as written; Check sorts them")
        XCTAssertEqual(lora.shared, false)
        XCTAssertEqual(lora.overrides.count, 1)
        XCTAssertEqual(lora.overrides[0].layer, 3)
        XCTAssertEqual(lora.overrides[0].module, "attention.output")
        XCTAssertEqual(lora.overrides[0].rank, 2)
        XCTAssertEqual(lora.overrides[0].alpha, 8)

        XCTAssertEqual(s.prune, PruneSettings(threshold: 0.8, levels: [.rank], scope: .global))
        XCTAssertEqual(s.codegen, CodegenSettings(tokens: .fixed(64), access: .internal))
    }

    func testLocationsOfKeysAndElements() throws {
        let s = try XCTUnwrap(SpecTestSupport.parse(full).0)
        func at(_ line: Int, _ column: Int) -> SourceLocation {
            SourceLocation(path: SpecTestSupport.path, line: line, column: column)
        }
        XCTAssertEqual(s.keyLocations["name"], at(2, 1))
        XCTAssertEqual(s.keyLocations["model.layers"], at(4, 3))
        XCTAssertEqual(s.keyLocations["model.modules.key"], at(5, 32))
        XCTAssertEqual(s.keyLocations["model.modules.key[1]"], at(5, 43))
        XCTAssertEqual(s.keyLocations["prune.threshold"], at(25, 9))
        XCTAssertEqual(s.keyLocations["codegen.tokens"], at(26, 11))
        XCTAssertEqual(s.model.modules[1].location, at(5, 32))
        let tt = s.groups[0]
        XCTAssertEqual(tt.location, at(8, 5))
        XCTAssertEqual(tt.location(of: "rank"), at(14, 5))
        XCTAssertEqual(tt.location(of: "order[2]"), at(13, 28))
        XCTAssertEqual(tt.location(of: "factor.in[2]"), at(12, 42))
        XCTAssertEqual(tt.location(of: "init.seed"), at(17, 45))
        let lora = s.groups[1]
        XCTAssertEqual(lora.location(of: "layers[1]"), at(20, 17))
        XCTAssertEqual(lora.location(of: "overrides.3.attention.output.alpha"), at(24, 49))
        XCTAssertEqual(lora.overrides[0].location, at(24, 17))
    }

    func testDefaults() throws {
        let (spec, diagnostics) = SpecTestSupport.parse("""
            adaptc: 1
            name: Small
            model: {layers: 3, modules: {fc: [8, 4]}}
            adapters:
              - {name: fc, structure: lora, modules: [fc], rank: 2}
            """)
        XCTAssertEqual(diagnostics, [])
        let s = try XCTUnwrap(spec)
        let g = s.groups[0]
        XCTAssertEqual(g.layers, [0, 1, 2], "layers defaults to all")
        XCTAssertEqual(g.scaling, .standard)
        XCTAssertFalse(g.shared)
        XCTAssertEqual(g.initialization, InitSettings(method: .zero))
        XCTAssertNil(g.alpha)
        XCTAssertNil(g.order)
        XCTAssertNil(g.outFactors)
        XCTAssertEqual(g.overrides, [])
        XCTAssertNil(s.model.weightsKey)
        XCTAssertEqual(s.prune, PruneSettings(threshold: 0.9, levels: [.layer, .rank], scope: .pair))
        XCTAssertEqual(s.codegen, CodegenSettings(tokens: .dynamic, access: .public))
    }

    func testLayerForms() throws {
        func layers(_ text: String) -> [Int]? {
            SpecTestSupport.parse("""
                adaptc: 1
                name: Small
                model: {layers: 12, modules: {fc: [8, 4]}}
                adapters:
                  - {name: fc, structure: lora, modules: [fc], rank: 2, layers: \(text)}
                """).0?.groups[0].layers
        }
        XCTAssertEqual(layers("all"), Array(0..<12))
        XCTAssertEqual(layers("[0, 3, 5]"), [0, 3, 5])
        XCTAssertEqual(layers("\"0..<6\""), Array(0..<6))
        XCTAssertEqual(layers("\"6...11\""), Array(6...11))
        XCTAssertEqual(layers("\"2 ..< 4\""), [2, 3])
        XCTAssertEqual(layers("\"7...7\""), [7])
    }

    /// DESIGN §5 says YAML 1.2: its core schema, not Yams' YAML 1.1 resolver
    /// (`yes` is a string, `012` is twelve, quoted numbers are strings).
    func testYAML12CoreSchema() {
        func group(_ extra: String) -> (AdapterGroup?, [String]) {
            let (spec, diagnostics) = SpecTestSupport.parse("""
                adaptc: 1
                name: Small
                model: {layers: 1, modules: {fc: [8, 4]}}
                adapters:
                  - {name: fc, structure: lora, modules: [fc], \(extra)}
                """)
            return (spec?.groups[0], diagnostics.map(\.message))
        }
        XCTAssertEqual(group("rank: 012").0?.rank, .uniform(12))
        XCTAssertEqual(group("rank: 0x1F").0?.rank, .uniform(31))
        XCTAssertEqual(group("rank: 0o17").0?.rank, .uniform(15))
        XCTAssertEqual(group("rank: +3").0?.rank, .uniform(3))
        XCTAssertEqual(group("rank: 2, alpha: .5").0?.alpha, 0.5)
        XCTAssertEqual(group("rank: 2, alpha: 1e3").0?.alpha, 1000)
        XCTAssertEqual(group("rank: 2, shared: True").0?.shared, true)
        XCTAssertEqual(group("rank: 2, shared: yes").1, ["'shared' must be true or false, found the string 'yes'"])
        XCTAssertEqual(group("rank: \"8\"").1, ["'rank' must be an integer, found the string '8'"])
        XCTAssertEqual(group("rank: 1_000").1, ["'rank' must be an integer, found the string '1_000'"])
        XCTAssertEqual(group("rank: 8.0").1, ["'rank' must be an integer, found the number 8.0"])
        XCTAssertEqual(group("rank: ~").1, ["'rank' must be an integer, found nothing (null)"])
        XCTAssertEqual(group("rank: 2, init: {method: !!str zero}").0?.initialization.method, .zero)
    }

    func testSeedUsesTheWholeUInt64Range() throws {
        let spec = SpecTestSupport.parse("""
            adaptc: 1
            name: Small
            model: {layers: 1, modules: {fc: [8, 4]}}
            adapters:
              - {name: fc, structure: lora, modules: [fc], rank: 2, init: {method: gaussian, seed: 18446744073709551615}}
            """).0
        XCTAssertEqual(try XCTUnwrap(spec).groups[0].initialization.seed, UInt64.max)
    }

    func testDidYouMean() {
        XCTAssertEqual(DidYouMean.distance("rnak", "rank"), 1)
        XCTAssertEqual(DidYouMean.distance("modles", "modules"), 1)
        XCTAssertEqual(DidYouMean.suggestion(for: "rnak", among: GroupParser.keys), "rank")
        XCTAssertEqual(DidYouMean.suggestion(for: "power_iteration", among: InitParser.keys), "power_iterations")
        XCTAssertEqual(DidYouMean.suggestion(for: "Structure", among: GroupParser.keys), "structure")
        XCTAssertNil(DidYouMean.suggestion(for: "banana", among: GroupParser.keys))
    }

    func testSwiftIdentifiers() {
        XCTAssertTrue(SwiftIdentifier.isUpperCamelCase("BertAttention"))
        XCTAssertTrue(SwiftIdentifier.isUpperCamelCase("GPT2"))
        XCTAssertFalse(SwiftIdentifier.isUpperCamelCase("bertAttention"))
        XCTAssertFalse(SwiftIdentifier.isUpperCamelCase("Bert_Attention"))
        XCTAssertFalse(SwiftIdentifier.isUpperCamelCase("Self"))
        XCTAssertFalse(SwiftIdentifier.isUpperCamelCase("Bért"))
        XCTAssertTrue(SwiftIdentifier.isLowerSnakeCase("self_attn2"))
        XCTAssertFalse(SwiftIdentifier.isLowerSnakeCase("self__attn"))
        XCTAssertFalse(SwiftIdentifier.isLowerSnakeCase("attn_"))
        XCTAssertFalse(SwiftIdentifier.isLowerSnakeCase("2attn"))
        XCTAssertFalse(SwiftIdentifier.isLowerSnakeCase("class"))
        XCTAssertTrue(SwiftIdentifier.isDottedPath("attention.self.query"))
        XCTAssertFalse(SwiftIdentifier.isDottedPath("attention..query"))
        XCTAssertFalse(SwiftIdentifier.isDottedPath("q-proj"))
        XCTAssertFalse(SwiftIdentifier.isValid("default"))
        XCTAssertFalse(SwiftIdentifier.isValid("_"))
        XCTAssertTrue(SwiftIdentifier.isValid("_private"))
        XCTAssertEqual(ModelModule.caseName(for: "attention.self.query"), "attentionSelfQuery")
    }
}

