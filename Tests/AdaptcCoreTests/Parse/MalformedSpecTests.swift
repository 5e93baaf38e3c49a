import XCTest
@testable import AdaptcCore

/// Malformed specs, at least one a rule: each asserts the exact
/// `path:line:column: error:` of the first error — the offending token in the
/// text (a list element or value for Parse, the key of the value for Check) —
/// and a keyword of its message.
final class MalformedSpecTests: XCTestCase {
    private func assertFirstError(_ yaml: String, _ lineColumn: String, _ keyword: String,
                                  file: StaticString = #filePath, line: UInt = #line) {
        let errors = SpecTestSupport.diagnostics(yaml).filter { $0.severity == .error }
        guard let first = errors.first else {
            XCTFail("no error; expected one at \(lineColumn)", file: file, line: line)
            return
        }
        let prefix = "\(SpecTestSupport.path):\(lineColumn): error: "
        XCTAssertTrue(first.description.hasPrefix(prefix), "\(first) does not start with \(prefix)", file: file, line: line)
        XCTAssertTrue(first.message.contains(keyword), "'\(first.message)' lacks '\(keyword)'", file: file, line: line)
    }

    /// Bad indentation: libyaml's own line and column.
    func testYAMLSyntaxError() {
        assertFirstError(#"""
            adaptc: 1
            name: Bert
              model: 3
            """#, "3:8", "invalid YAML")
    }

    /// An unclosed flow list is reported where libyaml gives up.
    func testUnclosedFlowSequence() {
        assertFirstError(#"""
            adaptc: 1
            name: [Bert
            model: {}
            """#, "3:6", "invalid YAML")
    }

    func testEmptyFile() {
        assertFirstError("", "1:1", "empty")
    }

    func testOnlyComments() {
        assertFirstError(#"""
            # nothing here

            # at all
            """#, "1:1", "empty")
    }

    func testScalarDocument() {
        assertFirstError(#"""
            just some text
            """#, "1:1", "mapping")
    }

    func testListDocument() {
        assertFirstError(#"""
            - adaptc: 1
            - name: Bert
            """#, "1:1", "mapping")
    }

    func testTwoDocuments() {
        assertFirstError(#"""
            adaptc: 1
            ---
            name: Bert
            """#, "2:1", "single document")
    }

    /// Yams reports the first occurrence; the error points at the second.
    func testDuplicateKey() {
        assertFirstError(#"""
            adaptc: 1
            name: Bert
            model: {layers: 12, modules: {query: [768, 768], key: [768, 768], value: [768, 768]}}
            adapters:
              - name: attn
                structure: lora
                modules: [query, value]
                rank: 8
                rank: 4
            """#, "9:5", "duplicate key 'rank'")
    }

    func testDuplicateKeyInFlowMapping() {
        assertFirstError(#"""
            adaptc: 1
            name: Bert
            model: {layers: 12, modules: {query: [768, 768], key: [768, 768], value: [768, 768]}}
            adapters:
              - {name: attn, structure: lora, modules: [query], rank: 8, rank: 4}
            """#, "5:62", "duplicate key 'rank'")
    }

    func testUnknownTopLevelKeyWithHint() {
        assertFirstError(#"""
            adaptc: 1
            name: Bert
            model: {layers: 12, modules: {query: [768, 768], key: [768, 768], value: [768, 768]}}
            adapters:
              - name: attn
                structure: lora
                modules: [query, value]
                rank: 8
            codgen: {tokens: 4}
            """#, "9:1", "did you mean 'codegen'?")
    }

    /// No second error saying 'adapters' is missing.
    func testMisspeltRequiredKeyIsReportedOnce() {
        assertFirstError(#"""
            adaptc: 1
            name: Bert
            model: {layers: 12, modules: {query: [768, 768], key: [768, 768], value: [768, 768]}}
            adaptors:
              - {name: attn, structure: lora, modules: [query], rank: 8}
            """#, "4:1", "did you mean 'adapters'?")
    }

    func testUnknownGroupKeyWithHint() {
        assertFirstError(#"""
            adaptc: 1
            name: Bert
            model: {layers: 12, modules: {query: [768, 768], key: [768, 768], value: [768, 768]}}
            adapters:
              - name: attn
                structure: lora
                modules: [query, value]
                rnak: 8
            """#, "8:5", "did you mean 'rank'?")
    }

    func testUnknownInitKeyWithHint() {
        assertFirstError(#"""
            adaptc: 1
            name: Bert
            model: {layers: 12, modules: {query: [768, 768], key: [768, 768], value: [768, 768]}}
            adapters:
              - name: attn
                structure: lora
                modules: [query, value]
                rank: 8
                init: {method: pissa, sedd: 3}
            """#, "9:27", "did you mean 'seed'?")
    }

    func testUnknownKeyWithoutHintListsKnownKeys() {
        assertFirstError(#"""
            adaptc: 1
            name: Bert
            model: {layers: 12, modules: {query: [768, 768], key: [768, 768], value: [768, 768]}}
            adapters:
              - name: attn
                structure: lora
                modules: [query, value]
                rank: 8
                banana: 1
            """#, "9:5", "known keys: name, structure")
    }

    /// At the group's mapping.
    func testMissingRequiredKey() {
        assertFirstError(#"""
            adaptc: 1
            name: Bert
            model: {layers: 12, modules: {query: [768, 768], key: [768, 768], value: [768, 768]}}
            adapters:
              - name: attn
                modules: [query]
                rank: 8
            """#, "5:5", "missing the required key 'structure'")
    }

    func testUnknownStructureWithHint() {
        assertFirstError(#"""
            adaptc: 1
            name: Bert
            model: {layers: 12, modules: {query: [768, 768], key: [768, 768], value: [768, 768]}}
            adapters:
              - name: attn
                structure: tenser-train
                modules: [query, value]
                rank: 8
            """#, "6:16", "did you mean 'tensor-train'?")
    }

    func testStringWhereIntegerExpected() {
        assertFirstError(#"""
            adaptc: 1
            name: Bert
            model: {layers: twelve, modules: {query: [768, 768], key: [768, 768], value: [768, 768]}}
            adapters:
              - {name: attn, structure: lora, modules: [query], rank: 8}
            """#, "3:17", "'model.layers' must be an integer")
    }

    func testFloatWhereIntegerExpected() {
        assertFirstError(#"""
            adaptc: 1
            name: Bert
            model: {layers: 12, modules: {query: [768, 768], key: [768, 768], value: [768, 768]}}
            adapters:
              - name: attn
                structure: lora
                modules: [query, value]
                rank: 8.5
            """#, "8:11", "'rank' must be an integer, found the number 8.5")
    }

    func testBoolWhereStringExpected() {
        assertFirstError(#"""
            adaptc: 1
            name: true
            model: {layers: 12, modules: {query: [768, 768], key: [768, 768], value: [768, 768]}}
            adapters:
              - {name: attn, structure: lora, modules: [query], rank: 8}
            """#, "2:7", "'name' must be a string, found the boolean true")
    }

    func testListWhereMappingExpected() {
        assertFirstError(#"""
            adaptc: 1
            name: Bert
            model: {layers: 12, modules: {query: [768, 768], key: [768, 768], value: [768, 768]}}
            adapters:
              - name: attn
                structure: lora
                modules: [query, value]
                rank: 8
                init: [pissa]
            """#, "9:11", "'init' must be a mapping, found a list")
    }

    /// 1e300 is a float: never converted to Int.
    func testHugeFloatDimension() {
        assertFirstError(#"""
            adaptc: 1
            name: Bert
            model: {layers: 12, modules: {query: [1e300, 768], key: [768, 768], value: [768, 768]}}
            adapters:
              - {name: attn, structure: lora, modules: [query], rank: 8}
            """#, "3:39", "must be an integer, found the number 1e300")
    }

    func testHugeIntegerLiteral() {
        assertFirstError(#"""
            adaptc: 1
            name: Bert
            model: {layers: 12, modules: {query: [768, 768], key: [768, 768], value: [768, 768]}}
            adapters:
              - name: attn
                structure: lora
                modules: [query, value]
                rank: 99999999999999999999999
            """#, "8:11", "out of range")
    }

    func testNegativeSeed() {
        assertFirstError(#"""
            adaptc: 1
            name: Bert
            model: {layers: 12, modules: {query: [768, 768], key: [768, 768], value: [768, 768]}}
            adapters:
              - name: attn
                structure: lora
                modules: [query, value]
                rank: 8
                init: {method: gaussian, seed: -1}
            """#, "9:36", "non-negative")
    }

    func testUnsupportedVersion() {
        assertFirstError(#"""
            adaptc: 2
            name: Bert
            model: {layers: 12, modules: {query: [768, 768], key: [768, 768], value: [768, 768]}}
            adapters:
              - name: attn
                structure: lora
                modules: [query, value]
                rank: 8
            """#, "1:1", "unsupported format version 2")
    }

    func testNameNotUpperCamelCase() {
        assertFirstError(#"""
            adaptc: 1
            name: bert_attention
            model: {layers: 12, modules: {query: [768, 768], key: [768, 768], value: [768, 768]}}
            adapters:
              - name: attn
                structure: lora
                modules: [query, value]
                rank: 8
            """#, "2:1", "did you mean 'BertAttention'?")
    }

    func testNameIsSwiftKeyword() {
        assertFirstError(#"""
            adaptc: 1
            name: Self
            model: {layers: 12, modules: {query: [768, 768], key: [768, 768], value: [768, 768]}}
            adapters:
              - name: attn
                structure: lora
                modules: [query, value]
                rank: 8
            """#, "2:1", "keyword")
    }

    func testNoGroups() {
        assertFirstError(#"""
            adaptc: 1
            name: Bert
            model: {layers: 12, modules: {query: [768, 768], key: [768, 768], value: [768, 768]}}
            adapters: []
            """#, "4:1", "lists no groups")
    }

    func testPruneThresholdOutOfRange() {
        assertFirstError(#"""
            adaptc: 1
            name: Bert
            model: {layers: 12, modules: {query: [768, 768], key: [768, 768], value: [768, 768]}}
            adapters:
              - name: attn
                structure: lora
                modules: [query, value]
                rank: 8
            prune: {threshold: 1.5}
            """#, "9:9", "(0, 1]")
    }

    func testCodegenTokensNotPositive() {
        assertFirstError(#"""
            adaptc: 1
            name: Bert
            model: {layers: 12, modules: {query: [768, 768], key: [768, 768], value: [768, 768]}}
            adapters:
              - name: attn
                structure: lora
                modules: [query, value]
                rank: 8
            codegen: {tokens: 0}
            """#, "9:11", "token count")
    }

    func testWeightsKeyNeedsPlaceholders() {
        assertFirstError(#"""
            adaptc: 1
            name: Bert
            model: {layers: 12, modules: {query: [768, 768], key: [768, 768], value: [768, 768]}, weights: {key: "layer.{layer}.weight"}}
            adapters:
              - {name: attn, structure: lora, modules: [query], rank: 8}
            """#, "3:97", "{module}")
    }

    func testModuleNameNotAnIdentifier() {
        assertFirstError(#"""
            adaptc: 1
            name: Bert
            model: {layers: 12, modules: {query: [768, 768], key: [768, 768], q-proj: [768, 768]}}
            adapters:
              - {name: attn, structure: lora, modules: [query], rank: 8}
            """#, "3:67", "dotted path")
    }

    func testModuleCaseIsSwiftKeyword() {
        assertFirstError(#"""
            adaptc: 1
            name: Bert
            model: {layers: 12, modules: {query: [768, 768], key: [768, 768], default: [768, 768]}}
            adapters:
              - {name: attn, structure: lora, modules: [query], rank: 8}
            """#, "3:67", "keyword")
    }

    /// `attention.query` and `attentionQuery` both become `attentionQuery`.
    func testModuleEnumCaseCollision() {
        assertFirstError(#"""
            adaptc: 1
            name: Bert
            model:
              layers: 2
              modules:
                attention.query: [8, 8]
                attentionQuery: [8, 8]
            adapters:
              - {name: attn, structure: lora, modules: [attentionQuery], rank: 2}
            """#, "7:5", "enum case 'attentionQuery'")
    }

    func testModuleShapeNotPositive() {
        assertFirstError(#"""
            adaptc: 1
            name: Bert
            model: {layers: 12, modules: {query: [768, 768], key: [0, 768], value: [768, 768]}}
            adapters:
              - {name: attn, structure: lora, modules: [query], rank: 8}
            """#, "3:56", "must be positive")
    }

    func testModuleShapeNotAPair() {
        assertFirstError(#"""
            adaptc: 1
            name: Bert
            model: {layers: 12, modules: {query: [768, 768], key: [768], value: [768, 768]}}
            adapters:
              - {name: attn, structure: lora, modules: [query], rank: 8}
            """#, "3:55", "[out, in]")
    }

    func testDimensionAboveLimit() {
        assertFirstError(#"""
            adaptc: 1
            name: Bert
            model: {layers: 12, modules: {query: [2000000, 768], key: [768, 768], value: [768, 768]}}
            adapters:
              - {name: attn, structure: lora, modules: [query], rank: 8}
            """#, "3:39", "dimension limit 1,048,576")
    }

    /// Each dimension is allowed, out·in = 2^40 is not.
    func testPairTensorAboveLimit() {
        assertFirstError(#"""
            adaptc: 1
            name: Bert
            model: {layers: 12, modules: {query: [1048576, 1048576], key: [768, 768], value: [768, 768]}}
            adapters:
              - {name: attn, structure: lora, modules: [key], rank: 8}
            """#, "3:31", "tensor limit")
    }

    func testGroupNameNotSnakeCase() {
        assertFirstError(#"""
            adaptc: 1
            name: Bert
            model: {layers: 12, modules: {query: [768, 768], key: [768, 768], value: [768, 768]}}
            adapters:
              - name: SelfAttn
                structure: lora
                modules: [query, value]
                rank: 8
            """#, "5:5", "did you mean 'self_attn'?")
    }

    func testGroupNameIsSwiftKeyword() {
        assertFirstError(#"""
            adaptc: 1
            name: Bert
            model: {layers: 12, modules: {query: [768, 768], key: [768, 768], value: [768, 768]}}
            adapters:
              - name: class
                structure: lora
                modules: [query, value]
                rank: 8
            """#, "5:5", "keyword")
    }

    func testDuplicateGroupName() {
        assertFirstError(#"""
            adaptc: 1
            name: Bert
            model: {layers: 12, modules: {query: [768, 768], key: [768, 768], value: [768, 768]}}
            adapters:
              - {name: attn, structure: lora, modules: [query], rank: 8}
              - {name: attn, structure: lora, modules: [key], rank: 8}
            """#, "6:6", "already used by the group at 5:6")
    }

    func testLayerOutOfRange() {
        assertFirstError(#"""
            adaptc: 1
            name: Bert
            model: {layers: 12, modules: {query: [768, 768], key: [768, 768], value: [768, 768]}}
            adapters:
              - name: attn
                structure: lora
                modules: [query, value]
                rank: 8
                layers: [0, 12]
            """#, "9:17", "out of range: the model has 12 layers")
    }

    func testDuplicateLayer() {
        assertFirstError(#"""
            adaptc: 1
            name: Bert
            model: {layers: 12, modules: {query: [768, 768], key: [768, 768], value: [768, 768]}}
            adapters:
              - name: attn
                structure: lora
                modules: [query, value]
                rank: 8
                layers: [1, 2, 1]
            """#, "9:20", "listed twice")
    }

    func testEmptyLayerRange() {
        assertFirstError(#"""
            adaptc: 1
            name: Bert
            model: {layers: 12, modules: {query: [768, 768], key: [768, 768], value: [768, 768]}}
            adapters:
              - name: attn
                structure: lora
                modules: [query, value]
                rank: 8
                layers: "3..<3"
            """#, "9:13", "is empty")
    }

    func testMalformedLayerRange() {
        assertFirstError(#"""
            adaptc: 1
            name: Bert
            model: {layers: 12, modules: {query: [768, 768], key: [768, 768], value: [768, 768]}}
            adapters:
              - name: attn
                structure: lora
                modules: [query, value]
                rank: 8
                layers: "0..6"
            """#, "9:13", "range such as")
    }

    func testUnknownModuleWithHint() {
        assertFirstError(#"""
            adaptc: 1
            name: Bert
            model: {layers: 12, modules: {query: [768, 768], key: [768, 768], value: [768, 768]}}
            adapters:
              - name: attn
                structure: lora
                modules: [query, vaule]
                rank: 8
            """#, "7:22", "did you mean 'value'?")
    }

    func testDuplicateModuleInGroup() {
        assertFirstError(#"""
            adaptc: 1
            name: Bert
            model: {layers: 12, modules: {query: [768, 768], key: [768, 768], value: [768, 768]}}
            adapters:
              - name: attn
                structure: lora
                modules: [query, value, query]
                rank: 8
            """#, "7:29", "listed twice")
    }

    /// The later group's module entry names the earlier group and the shared layers.
    func testOverlappingPairsBetweenGroups() {
        assertFirstError(#"""
            adaptc: 1
            name: Bert
            model: {layers: 12, modules: {query: [768, 768], key: [768, 768], value: [768, 768]}}
            adapters:
              - {name: attn, structure: lora, layers: "0..<6", modules: [query, key], rank: 8}
              - {name: late, structure: lora, layers: "4...11", modules: [value, key], rank: 4}
            """#, "6:70", "layers 4, 5 of module 'key' are already covered by group 'attn'")
    }

    func testFactorProductMismatch() {
        assertFirstError(#"""
            adaptc: 1
            name: Bert
            model: {layers: 12, modules: {query: [768, 768], key: [768, 768], value: [768, 768]}}
            adapters:
              - name: attn
                structure: tensor-train
                modules: [query, value]
                rank: 8
                factor: {out: [4, 8, 16], in: [768]}
            """#, "9:14", "multiplies to 4·8·16 = 512, but the modules' out size is 768")
    }

    func testFactorBelowOne() {
        assertFirstError(#"""
            adaptc: 1
            name: Bert
            model: {layers: 12, modules: {query: [768, 768], key: [768, 768], value: [768, 768]}}
            adapters:
              - name: attn
                structure: tensor-train
                modules: [query, value]
                rank: 8
                factor: {out: [0, 768]}
            """#, "9:20", "at least 1")
    }

    func testFactorOnLoRA() {
        assertFirstError(#"""
            adaptc: 1
            name: Bert
            model: {layers: 12, modules: {query: [768, 768], key: [768, 768], value: [768, 768]}}
            adapters:
              - name: attn
                structure: lora
                modules: [query, value]
                rank: 8
                factor: {out: [24, 32]}
            """#, "9:5", "'factor' applies only to tensor-train")
    }

    func testStackedModulesNeedOneShape() {
        assertFirstError(#"""
            adaptc: 1
            name: Bert
            model: {layers: 12, modules: {query: [768, 768], key: [768, 768], value: [768, 3072]}}
            adapters:
              - {name: attn, structure: cp, modules: [query, value], rank: 8}
            """#, "5:50", "need one shape")
    }

    func testOrderModeTwice() {
        assertFirstError(#"""
            adaptc: 1
            name: Bert
            model: {layers: 12, modules: {query: [768, 768], key: [768, 768], value: [768, 768]}}
            adapters:
              - name: attn
                structure: tensor-train
                modules: [query, value]
                rank: 8
                order: [layer, module, out, in, out]
            """#, "9:37", "mode 'out' appears twice")
    }

    /// `out` stands for all its factors, so `out.1` after it repeats one.
    func testOrderFactorTwiceThroughWholeOut() {
        assertFirstError(#"""
            adaptc: 1
            name: Bert
            model: {layers: 12, modules: {query: [768, 768], key: [768, 768], value: [768, 768]}}
            adapters:
              - name: attn
                structure: tensor-train
                modules: [query, value]
                rank: 8
                factor: {out: [24, 32]}
                order: [layer, module, out, out.1, in]
            """#, "10:33", "stands for all its factors")
    }

    func testOrderMissingMode() {
        assertFirstError(#"""
            adaptc: 1
            name: Bert
            model: {layers: 12, modules: {query: [768, 768], key: [768, 768], value: [768, 768]}}
            adapters:
              - name: attn
                structure: tensor-train
                modules: [query, value]
                rank: 8
                order: [layer, out, in]
            """#, "9:5", "missing 'module'")
    }

    func testOrderUnknownModeWithHint() {
        assertFirstError(#"""
            adaptc: 1
            name: Bert
            model: {layers: 12, modules: {query: [768, 768], key: [768, 768], value: [768, 768]}}
            adapters:
              - name: attn
                structure: tucker
                modules: [query, value]
                rank: 8
                order: [layer, module, outt, in]
            """#, "9:28", "did you mean 'out'?")
    }

    func testOrderFactorOutOfRange() {
        assertFirstError(#"""
            adaptc: 1
            name: Bert
            model: {layers: 12, modules: {query: [768, 768], key: [768, 768], value: [768, 768]}}
            adapters:
              - name: attn
                structure: cp
                modules: [query, value]
                rank: 8
                factor: {out: [24, 32]}
                order: [layer, module, out.0, out.2, in]
            """#, "10:35", "out has 2 factors")
    }

    func testOrderFactorOfUnfactorisedMode() {
        assertFirstError(#"""
            adaptc: 1
            name: Bert
            model: {layers: 12, modules: {query: [768, 768], key: [768, 768], value: [768, 768]}}
            adapters:
              - name: attn
                structure: cp
                modules: [query, value]
                rank: 8
                order: [layer, module, out, in.0]
            """#, "9:33", "not factorised")
    }

    func testOrderOnLoRA() {
        assertFirstError(#"""
            adaptc: 1
            name: Bert
            model: {layers: 12, modules: {query: [768, 768], key: [768, 768], value: [768, 768]}}
            adapters:
              - name: attn
                structure: lora
                modules: [query, value]
                rank: 8
                order: [layer, module, out, in]
            """#, "9:5", "'order' applies only")
    }

    /// At the group.
    func testMissingRank() {
        assertFirstError(#"""
            adaptc: 1
            name: Bert
            model: {layers: 12, modules: {query: [768, 768], key: [768, 768], value: [768, 768]}}
            adapters:
              - name: attn
                structure: lora
                modules: [query, value]
            """#, "5:5", "needs a rank")
    }

    func testNegativeRank() {
        assertFirstError(#"""
            adaptc: 1
            name: Bert
            model: {layers: 12, modules: {query: [768, 768], key: [768, 768], value: [768, 768]}}
            adapters:
              - name: attn
                structure: lora
                modules: [query, value]
                rank: -4
            """#, "8:5", "must be a positive integer, found -4")
    }

    func testRankAndRanks() {
        assertFirstError(#"""
            adaptc: 1
            name: Bert
            model: {layers: 12, modules: {query: [768, 768], key: [768, 768], value: [768, 768]}}
            adapters:
              - name: attn
                structure: lora
                modules: [query, value]
                rank: 8
                ranks: [4]
            """#, "9:5", "either 'rank' or 'ranks'")
    }

    func testLoRAWithRanksList() {
        assertFirstError(#"""
            adaptc: 1
            name: Bert
            model: {layers: 12, modules: {query: [768, 768], key: [768, 768], value: [768, 768]}}
            adapters:
              - name: attn
                structure: lora
                modules: [query, value]
                ranks: [4, 4]
            """#, "8:5", "lora groups take 'rank: R'")
    }

    /// Modes layer, module, out, in: three bonds.
    func testTensorTrainRanksCount() {
        assertFirstError(#"""
            adaptc: 1
            name: Bert
            model: {layers: 12, modules: {query: [768, 768], key: [768, 768], value: [768, 768]}}
            adapters:
              - name: attn
                structure: tensor-train
                modules: [query, value]
                ranks: [4, 4]
            """#, "8:5", "has 3 bonds, but 'ranks' lists 2")
    }

    /// Bond 0 separates layer (12) from the rest: at most 12.
    func testTensorTrainRankAboveBound() {
        assertFirstError(#"""
            adaptc: 1
            name: Bert
            model: {layers: 12, modules: {query: [768, 768], key: [768, 768], value: [768, 768]}}
            adapters:
              - name: attn
                structure: tensor-train
                modules: [query, value]
                ranks: [16, 8, 8]
            """#, "8:13", "above its bound")
    }

    func testTensorTrainRanksAsMapping() {
        assertFirstError(#"""
            adaptc: 1
            name: Bert
            model: {layers: 12, modules: {query: [768, 768], key: [768, 768], value: [768, 768]}}
            adapters:
              - name: attn
                structure: tensor-train
                modules: [query, value]
                ranks: {layer: 4}
            """#, "8:5", "one rank per bond")
    }

    func testCPWithRanks() {
        assertFirstError(#"""
            adaptc: 1
            name: Bert
            model: {layers: 12, modules: {query: [768, 768], key: [768, 768], value: [768, 768]}}
            adapters:
              - name: attn
                structure: cp
                modules: [query, value]
                ranks: [4, 4, 4]
            """#, "8:5", "cp groups take 'rank: R'")
    }

    func testTuckerRanksMissingMode() {
        assertFirstError(#"""
            adaptc: 1
            name: Bert
            model: {layers: 12, modules: {query: [768, 768], key: [768, 768], value: [768, 768]}}
            adapters:
              - name: attn
                structure: tucker
                modules: [query, value]
                ranks: {layer: full, out: 16, in: 16}
            """#, "8:5", "missing 'module'")
    }

    func testTuckerRanksUnknownMode() {
        assertFirstError(#"""
            adaptc: 1
            name: Bert
            model: {layers: 12, modules: {query: [768, 768], key: [768, 768], value: [768, 768]}}
            adapters:
              - name: attn
                structure: tucker
                modules: [query, value]
                ranks: {layer: full, module: 2, out.0: 16, in: 16}
            """#, "8:37", "has no mode 'out.0'")
    }

    func testTuckerRanksFactorisedModeAsAWhole() {
        assertFirstError(#"""
            adaptc: 1
            name: Bert
            model: {layers: 12, modules: {query: [768, 768], key: [768, 768], value: [768, 768]}}
            adapters:
              - name: attn
                structure: tucker
                modules: [query, value]
                ranks: {layer: full, module: 2, out: 16, in: 16}
                factor: {out: [24, 32]}
            """#, "8:37", "is factorised")
    }

    func testTuckerRankAboveModeSize() {
        assertFirstError(#"""
            adaptc: 1
            name: Bert
            model: {layers: 12, modules: {query: [768, 768], key: [768, 768], value: [768, 768]}}
            adapters:
              - name: attn
                structure: tucker
                modules: [query, value]
                ranks: {layer: 13, module: 2, out: 16, in: 16}
            """#, "8:13", "above its size 12")
    }

    func testTuckerRankNotAnInteger() {
        assertFirstError(#"""
            adaptc: 1
            name: Bert
            model: {layers: 12, modules: {query: [768, 768], key: [768, 768], value: [768, 768]}}
            adapters:
              - name: attn
                structure: tucker
                modules: [query, value]
                ranks: {layer: half, module: 2, out: 16, in: 16}
            """#, "8:20", "must be an integer or full")
    }

    func testAlphaNotPositive() {
        assertFirstError(#"""
            adaptc: 1
            name: Bert
            model: {layers: 12, modules: {query: [768, 768], key: [768, 768], value: [768, 768]}}
            adapters:
              - name: attn
                structure: lora
                modules: [query, value]
                rank: 8
                alpha: 0
            """#, "9:5", "positive finite")
    }

    func testAlphaInfinite() {
        assertFirstError(#"""
            adaptc: 1
            name: Bert
            model: {layers: 12, modules: {query: [768, 768], key: [768, 768], value: [768, 768]}}
            adapters:
              - name: attn
                structure: lora
                modules: [query, value]
                rank: 8
                alpha: .inf
            """#, "9:5", "positive finite")
    }

    /// L·M·out·in = 1000·3·768·768 ≈ 1.8e9·… above 2^34.
    func testGroupTensorAboveLimit() {
        assertFirstError(#"""
            adaptc: 1
            name: Bert
            model: {layers: 40000, modules: {query: [768, 768], key: [768, 768], value: [768, 768]}}
            adapters:
              - {name: attn, structure: tensor-train, modules: [query, key, value], rank: 8}
            """#, "5:5", "above the tensor limit 2^34")
    }

    func testOverrideKeyNotLayerDotModule() {
        assertFirstError(#"""
            adaptc: 1
            name: Bert
            model: {layers: 12, modules: {query: [768, 768], key: [768, 768], value: [768, 768]}}
            adapters:
              - name: attn
                structure: lora
                modules: [query, value]
                rank: 8
                overrides: {query.3: {rank: 4}}
            """#, "9:17", "LAYER.MODULE")
    }

    func testOverrideNamesNoPairOfTheGroup() {
        assertFirstError(#"""
            adaptc: 1
            name: Bert
            model: {layers: 12, modules: {query: [768, 768], key: [768, 768], value: [768, 768]}}
            adapters:
              - name: attn
                structure: lora
                modules: [query, value]
                rank: 8
                layers: "0..<6"
                overrides: {"7.query": {rank: 4}}
            """#, "10:17", "layer 7 is not one of its layers")
    }

    func testOverrideModuleNotInGroup() {
        assertFirstError(#"""
            adaptc: 1
            name: Bert
            model: {layers: 12, modules: {query: [768, 768], key: [768, 768], value: [768, 768]}}
            adapters:
              - name: attn
                structure: lora
                modules: [query, value]
                rank: 8
                overrides: {"1.key": {rank: 4}}
            """#, "9:17", "'key' is not one of its modules")
    }

    func testOverrideRankNotPositive() {
        assertFirstError(#"""
            adaptc: 1
            name: Bert
            model: {layers: 12, modules: {query: [768, 768], key: [768, 768], value: [768, 768]}}
            adapters:
              - name: attn
                structure: lora
                modules: [query, value]
                rank: 8
                overrides: {"1.query": {rank: 0}}
            """#, "9:29", "override rank for 1.query must be a positive integer")
    }

    func testSharedTakesNoOverrides() {
        assertFirstError(#"""
            adaptc: 1
            name: Bert
            model: {layers: 12, modules: {query: [768, 768], key: [768, 768], value: [768, 768]}}
            adapters:
              - name: attn
                structure: lora
                modules: [query, value]
                rank: 8
                shared: true
                overrides: {"1.query": {rank: 4}}
            """#, "10:5", "shared lora group takes no overrides")
    }

    func testSharedOnlyForLoRA() {
        assertFirstError(#"""
            adaptc: 1
            name: Bert
            model: {layers: 12, modules: {query: [768, 768], key: [768, 768], value: [768, 768]}}
            adapters:
              - name: attn
                structure: cp
                modules: [query, value]
                rank: 8
                shared: true
            """#, "9:5", "'shared' applies only to lora")
    }

    func testOverridesOnlyForLoRA() {
        assertFirstError(#"""
            adaptc: 1
            name: Bert
            model: {layers: 12, modules: {query: [768, 768], key: [768, 768], value: [768, 768]}}
            adapters:
              - name: attn
                structure: tensor-train
                modules: [query, value]
                rank: 8
                overrides: {"1.query": {rank: 4}}
            """#, "9:5", "'overrides' apply only to lora")
    }

    func testInitMethodDoesNotFitStructure() {
        assertFirstError(#"""
            adaptc: 1
            name: Bert
            model: {layers: 12, modules: {query: [768, 768], key: [768, 768], value: [768, 768]}}
            adapters:
              - name: attn
                structure: lora
                modules: [query, value]
                rank: 8
                init: {method: tt-svd}
            """#, "9:12", "does not fit a lora group")
    }

    func testPissaOnSharedLoRA() {
        assertFirstError(#"""
            adaptc: 1
            name: Bert
            model: {layers: 12, modules: {query: [768, 768], key: [768, 768], value: [768, 768]}}
            adapters:
              - name: attn
                structure: lora
                modules: [query, value]
                rank: 8
                shared: true
                init: {method: pissa}
            """#, "10:12", "does not fit a shared lora group")
    }

    func testPissaRankAboveMinOutIn() {
        assertFirstError(#"""
            adaptc: 1
            name: Bert
            model: {layers: 12, modules: {query: [768, 768], key: [768, 768], value: [768, 768]}}
            adapters:
              - name: attn
                structure: lora
                modules: [query, value]
                rank: 1000
                init: {method: pissa}
            """#, "8:5", "singular triplets")
    }

    func testSVDWithNonSVDMethod() {
        assertFirstError(#"""
            adaptc: 1
            name: Bert
            model: {layers: 12, modules: {query: [768, 768], key: [768, 768], value: [768, 768]}}
            adapters:
              - name: attn
                structure: lora
                modules: [query, value]
                rank: 8
                init: {method: zero, svd: exact}
            """#, "9:26", "'svd' applies only to SVD-based")
    }

    func testRecycleNeedsFrom() {
        assertFirstError(#"""
            adaptc: 1
            name: Bert
            model: {layers: 12, modules: {query: [768, 768], key: [768, 768], value: [768, 768]}}
            adapters:
              - name: attn
                structure: lora
                modules: [query, value]
                rank: 8
                init: {method: recycle}
            """#, "9:12", "needs 'from'")
    }

    func testFromWithoutRecycle() {
        assertFirstError(#"""
            adaptc: 1
            name: Bert
            model: {layers: 12, modules: {query: [768, 768], key: [768, 768], value: [768, 768]}}
            adapters:
              - name: attn
                structure: lora
                modules: [query, value]
                rank: 8
                init: {method: zero, from: [a.safetensors]}
            """#, "9:26", "only to init method 'recycle'")
    }

    func testAbsolutePathInFrom() {
        assertFirstError(#"""
            adaptc: 1
            name: Bert
            model: {layers: 12, modules: {query: [768, 768], key: [768, 768], value: [768, 768]}}
            adapters:
              - name: attn
                structure: lora
                modules: [query, value]
                rank: 8
                init: {method: recycle, from: [old/a.safetensors, /abs/b.safetensors]}
            """#, "9:55", "must be relative to the spec's folder")
    }

    func testNegativePowerIterations() {
        assertFirstError(#"""
            adaptc: 1
            name: Bert
            model: {layers: 12, modules: {query: [768, 768], key: [768, 768], value: [768, 768]}}
            adapters:
              - name: attn
                structure: lora
                modules: [query, value]
                rank: 8
                init: {method: pissa, power_iterations: -1}
            """#, "9:27", "non-negative")
    }

    /// Nothing is expanded or allocated for `layers: all`.
    func testHugeLayerCount() {
        assertFirstError(#"""
            adaptc: 1
            name: Bert
            model: {layers: 9223372036854775807, modules: {query: [768, 768], key: [768, 768], value: [768, 768]}}
            adapters:
              - {name: attn, structure: lora, modules: [query], rank: 8}
            """#, "3:9", "layer count in 1...1,048,576")
    }

    func testHugeLayerRange() {
        assertFirstError(#"""
            adaptc: 1
            name: Bert
            model: {layers: 12, modules: {query: [768, 768], key: [768, 768], value: [768, 768]}}
            adapters:
              - name: attn
                structure: lora
                modules: [query, value]
                rank: 8
                layers: "0..<99999999999"
            """#, "9:13", "goes beyond 1048576 layers")
    }

    // MARK: Hand-written cases

    func testControlCharacterIsAReaderError() {
        assertFirstError("adaptc: 1\nname: a\u{7}b\n", "2:8", "control characters are not allowed")
    }

    func testTabIndentation() {
        assertFirstError("adaptc: 1\n\tname: x\n", "2:1", "tab character")
    }

    /// Parse reports every malformed value of a file, sorted by line and column.
    func testSeveralParseErrorsAreAllReportedSortedByLine() {
        let yaml = """
            adaptc: 1
            name: 7
            model: {layers: twelve, modules: {query: [768, 768]}}
            adapters:
              - name: attn
                structure: lora
                modules: [query]
                rank: 8.5
                sheared: true
            codgen: {}
            """
        let p = SpecTestSupport.path
        XCTAssertEqual(SpecTestSupport.diagnostics(yaml).map(\.description), [
            "\(p):2:7: error: 'name' must be a string, found the integer 7",
            "\(p):3:17: error: 'model.layers' must be an integer, found the string 'twelve'",
            "\(p):8:11: error: 'rank' must be an integer, found the number 8.5",
            "\(p):9:5: error: unknown key 'sheared' in adapter group 'attn'; did you mean 'shared'?",
            "\(p):10:1: error: unknown key 'codgen' in the spec; did you mean 'codegen'?",
        ])
    }

    /// Check, too, reports every rule a file breaks, sorted by line and column.
    func testSeveralCheckErrorsAreAllReportedSortedByLine() {
        let yaml = """
            adaptc: 1
            name: bert
            model: {layers: 4, modules: {query: [64, 64], key: [64, 64]}}
            adapters:
              - name: late
                structure: lora
                layers: [2, 3, 4]
                modules: [key, query]
                rank: 0
              - name: Early
                structure: tensor-train
                modules: [query]
                rank: 4
            prune: {threshold: 0}
            """
        let found = SpecTestSupport.diagnostics(yaml).map { "\($0.location.line):\($0.location.column) \($0.severity)" }
        XCTAssertEqual(found, ["2:1 error", "7:20 error", "9:5 error", "10:5 error", "12:15 error", "14:9 error"])
        let messages = SpecTestSupport.diagnostics(yaml).map(\.message)
        XCTAssertTrue(messages[0].contains("did you mean 'Bert'?"))
        XCTAssertTrue(messages[1].contains("layer 4 is out of range"))
        XCTAssertTrue(messages[2].contains("'rank' must be a positive integer"))
        XCTAssertTrue(messages[3].contains("did you mean 'early'?"))
        XCTAssertTrue(messages[4].contains("layers 2, 3 of module 'query' are already covered by group 'late'"))
        XCTAssertTrue(messages[5].contains("'prune.threshold' must be in (0, 1]"))
    }
}
