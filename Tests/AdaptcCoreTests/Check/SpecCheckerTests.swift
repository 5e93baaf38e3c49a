import XCTest
@testable import AdaptcCore

/// Valid specs of every structure: Check resolves modes, ranks and scales as
/// DESIGN §2 defines them (expected values worked out by hand from §2).
final class SpecCheckerTests: XCTestCase {
    private func mode(_ name: String, _ size: Int) -> ResolvedMode {
        ResolvedMode(name: ModeName(parsing: name)!, size: size)
    }

    func testLoRAWithOverrides() throws {
        let checked = try XCTUnwrap(SpecTestSupport.checked("""
            adaptc: 1
            name: BertAttention
            model:
              layers: 12
              modules: {query: [768, 768], value: [768, 768], attention.output.dense: [768, 3072]}
            adapters:
              - name: attn
                structure: lora
                layers: "0..<6"
                modules: [query, value, attention.output.dense]
                rank: 8
                alpha: 16
                init: {method: pissa, svd: randomized}
                overrides:
                  "3.query": {rank: 4, alpha: 8}
                  "5.attention.output.dense": {rank: 2}
                  "1.value": {alpha: 32}
            """))
        XCTAssertEqual(checked.diagnostics, [])
        let g = try XCTUnwrap(checked.groups.first)
        XCTAssertEqual(g.ranks, .lora(8))
        XCTAssertEqual(g.modes, [], "lora has no stacked delta tensor")
        XCTAssertEqual(g.layers, [0, 1, 2, 3, 4, 5])
        XCTAssertEqual(g.modules.map(\.name), ["query", "value", "attention.output.dense"])
        XCTAssertEqual(g.modules[2].inFeatures, 3072)
        XCTAssertEqual(g.effectiveRank, 8)
        XCTAssertEqual(g.pairs.count, 18)
        // s = alpha / r per pair (PEFT's rank_pattern / alpha_pattern).
        XCTAssertEqual(g.scale(layer: 0, module: "query"), 2)
        XCTAssertEqual(g.rank(layer: 3, module: "query"), 4)
        XCTAssertEqual(g.scale(layer: 3, module: "query"), 2)
        XCTAssertEqual(g.rank(layer: 5, module: "attention.output.dense"), 2)
        XCTAssertEqual(g.scale(layer: 5, module: "attention.output.dense"), 8)
        XCTAssertEqual(g.scale(layer: 1, module: "value"), 4)
        XCTAssertNotNil(checked.group(covering: Pair(layer: 5, module: "value")))
        XCTAssertNil(checked.group(covering: Pair(layer: 6, module: "value")))
    }

    func testSharedLoRAWithRSLoRAScaleAndSortedLayers() throws {
        let checked = try XCTUnwrap(SpecTestSupport.checked("""
            adaptc: 1
            name: Llama
            model:
              layers: 32
              modules: {q_proj: [4096, 4096], down_proj: [4096, 11008]}
            adapters:
              - name: kept
                structure: lora
                layers: [0, 1, 2]
                modules: [q_proj, down_proj]
                rank: 16
                alpha: 32
              - name: kept_shared
                structure: lora
                layers: [9, 4, 7]
                modules: [q_proj, down_proj]
                rank: 16
                alpha: 8
                scaling: rslora
                shared: true
                init: {method: gaussian, seed: 7}
            """))
        let shared = checked.groups[1]
        XCTAssertTrue(shared.group.shared)
        XCTAssertEqual(shared.layers, [4, 7, 9], "Check sorts layers ascending")
        XCTAssertEqual(checked.spec.groups[1].layers, [4, 7, 9])
        XCTAssertEqual(shared.ranks, .lora(16))
        XCTAssertEqual(shared.scale(layer: 4, module: "down_proj"), 2, accuracy: 1e-12)   // 8 / √16
        XCTAssertEqual(shared.group.initialization.seed, 7)
        XCTAssertEqual(checked.groups[0].scale(layer: 0, module: "q_proj"), 2)
    }

    /// tt-xlayer's layout on a small model: modules stacked, out/in factorised,
    /// a uniform rank clipped where the left or right side is smaller.
    func testTensorTrainUniformRankIsClippedWithANote() throws {
        let yaml = """
            adaptc: 1
            name: CrossLayer
            model:
              layers: 4
              modules: {q: [64, 64], k: [64, 64]}
            adapters:
              - name: attn
                structure: tensor-train
                layers: "0...3"
                modules: [q, k]
                factor: {out: [4, 16], in: [4, 16]}
                order: [layer, module, out, in]
                rank: 8
                alpha: 16
                init: {method: tt-svd}
            """
        let checked = try XCTUnwrap(SpecTestSupport.checked(yaml))
        let g = checked.groups[0]
        XCTAssertEqual(g.modes, [mode("layer", 4), mode("module", 2), mode("out.0", 4), mode("out.1", 16),
                                 mode("in.0", 4), mode("in.1", 16)])
        // Bond bounds min(∏ left, ∏ right): 4, 8, 32, 64, 16 → clipped at bond 0 only.
        XCTAssertEqual(RankResolution.bondBounds(g.modes.map(\.size)), [4, 8, 32, 64, 16])
        XCTAssertEqual(g.ranks, .tensorTrain(bonds: [4, 8, 8, 8, 8]))
        XCTAssertEqual(g.effectiveRank, 8)
        XCTAssertEqual(g.scale(layer: 0, module: "q"), 2)
        XCTAssertEqual(checked.diagnostics.map(\.description), [
            "Specs/test.adapt.yaml:13:5: note: rank 8 clipped to min(∏ sizes left, ∏ sizes right) at bond 0 (layer|module) to 4",
        ])
    }

    /// LoTR-style order `[out, layer, module, in]` with explicit bond ranks; the
    /// module mode has size 1 and is dropped although `order` lists it.
    func testTensorTrainExplicitRanksAndSizeOneModes() throws {
        let checked = try XCTUnwrap(SpecTestSupport.checked("""
            adaptc: 1
            name: Lotr
            model:
              layers: 6
              modules: {dense: [64, 128]}
            adapters:
              - name: lotr
                structure: tensor-train
                layers: [1, 3, 5]
                modules: [dense]
                order: [out, layer, module, in]
                ranks: [16, 12]
                alpha: 32
            """))
        let g = checked.groups[0]
        XCTAssertEqual(g.modes, [mode("out", 64), mode("layer", 3), mode("in", 128)])
        XCTAssertEqual(g.ranks, .tensorTrain(bonds: [16, 12]))
        XCTAssertEqual(g.effectiveRank, 16)
        XCTAssertEqual(g.scale(layer: 3, module: "dense"), 2)
        XCTAssertEqual(checked.diagnostics, [])
    }

    /// A listed bond rank above what its neighbours let it carry (r_{k−1}·n_k
    /// from the left, n_{k+1}·r_{k+1} from the right) is legal but partly dead:
    /// a located warning per bond, with the rank it can reach. Bond 2 (24)
    /// fits its neighbours as written (8·4 = 32 from the left), and is cut
    /// to 16 only because bond 1 is cut to 1·4 = 4.
    func testTensorTrainBondAboveWhatItsNeighboursReachWarns() throws {
        let checked = try XCTUnwrap(SpecTestSupport.checked("""
            adaptc: 1
            name: Dead
            model:
              layers: 2
              modules: {fc: [16, 64]}
            adapters:
              - name: fc
                structure: tensor-train
                modules: [fc]
                factor: {out: [4, 4], in: [8, 8]}
                order: [layer, out.0, out.1, in.0, in.1]
                ranks: [1, 8, 24, 8]
            """))
        XCTAssertEqual(checked.groups[0].ranks, .tensorTrain(bonds: [1, 8, 24, 8]), "the plan keeps the spec's ranks")
        XCTAssertEqual(checked.diagnostics.map(\.description), [
            "Specs/test.adapt.yaml:12:16: warning: bond rank 8 at bond 1 (out.0|out.1) can reach only 4 (bond 0's 1 × out.0's 4, "
                + "from the left); the rest is counted in parameters but never used",
            "Specs/test.adapt.yaml:12:19: warning: bond rank 24 at bond 2 (out.1|in.0) can reach only 16 (bond 1's 4 × out.1's 4, "
                + "from the left); the rest is counted in parameters but never used",
        ])
        // From the right: n_{k+1}·r_{k+1} = 4·1.
        let four = ["layer", "out", "in.0", "in.1"].map { mode($0, 4) }
        let reach = RankResolution.reachableBondRanks([4, 16, 1], modes: four)
        XCTAssertEqual(reach.map(\.rank), [4, 4, 1])
        XCTAssertEqual(reach[1].why, "in.0's 4 × bond 2's 1, from the right")
    }

    /// An interleaved (TT-matrix) order with factors named one by one.
    func testTensorTrainInterleavedFactorOrder() throws {
        let checked = try XCTUnwrap(SpecTestSupport.checked("""
            adaptc: 1
            name: Interleaved
            model:
              layers: 2
              modules: {fc: [32, 32]}
            adapters:
              - name: fc
                structure: tensor-train
                modules: [fc]
                factor: {out: [4, 8], in: [4, 8]}
                order: [out.0, in.0, layer, out.1, in.1]
                rank: 4
            """))
        let g = checked.groups[0]
        XCTAssertEqual(g.modes.map(\.description), ["out.0=4", "in.0=4", "layer=2", "out.1=8", "in.1=8"])
        XCTAssertEqual(g.ranks, .tensorTrain(bonds: [4, 4, 4, 4]))
        XCTAssertEqual(g.scale(layer: 0, module: "fc"), 1, "no alpha: s = 1")
    }

    func testCP() throws {
        let checked = try XCTUnwrap(SpecTestSupport.checked("""
            adaptc: 1
            name: Lorta
            model:
              layers: 6
              modules: {q: [128, 256], v: [128, 256], o: [256, 128]}
            adapters:
              - name: qv
                structure: cp
                modules: [q, v]
                rank: 32
                alpha: 64
                init: {method: cp-als, svd: randomized, oversampling: 10, power_iterations: 2}
            """))
        let g = checked.groups[0]
        XCTAssertEqual(g.modes, [mode("layer", 6), mode("module", 2), mode("out", 128), mode("in", 256)])
        XCTAssertEqual(g.ranks, .cp(32))
        XCTAssertEqual(g.effectiveRank, 32)
        XCTAssertEqual(g.scale(layer: 5, module: "v"), 2)
    }

    func testTuckerRanksMapWithFull() throws {
        let checked = try XCTUnwrap(SpecTestSupport.checked("""
            adaptc: 1
            name: Tucker
            model:
              layers: 12
              modules: {query: [256, 256], key: [256, 256], value: [256, 256]}
            adapters:
              - name: lotr
                structure: tucker
                modules: [query, key, value]
                order: [out, layer, module, in]
                ranks: {layer: full, module: 2, out: 16, in: 12}
                alpha: 32
                init: {method: hosvd}
            """))
        let g = checked.groups[0]
        XCTAssertEqual(g.modes, [mode("out", 256), mode("layer", 12), mode("module", 3), mode("in", 256)])
        XCTAssertEqual(g.ranks, .tucker([16, nil, 2, 12]), "aligned with modes; full → nil")
        XCTAssertEqual(g.effectiveRank, 16)
        XCTAssertEqual(g.scale(layer: 0, module: "key"), 2)
    }

    func testTuckerUniformRankIsCappedPerMode() throws {
        let checked = try XCTUnwrap(SpecTestSupport.checked("""
            adaptc: 1
            name: Tucker
            model:
              layers: 3
              modules: {fc: [64, 64]}
            adapters:
              - name: fc
                structure: tucker
                modules: [fc]
                factor: {out: [8, 8], in: [4, 16]}
                rank: 6
            """))
        let g = checked.groups[0]
        XCTAssertEqual(g.modes.map(\.description), ["layer=3", "out.0=8", "out.1=8", "in.0=4", "in.1=16"])
        XCTAssertEqual(g.ranks, .tucker([3, 6, 6, 4, 6]))
    }

    func testSeveralGroupsPartitionThePairs() throws {
        let checked = try XCTUnwrap(SpecTestSupport.checked("""
            adaptc: 1
            name: Mixed
            model:
              layers: 8
              modules: {q: [64, 64], k: [64, 64], mlp.up: [256, 64]}
            adapters:
              - {name: early, structure: lora, layers: "0..<4", modules: [q, k, mlp.up], rank: 4}
              - {name: late, structure: tensor-train, layers: "4...7", modules: [q, k], rank: 4}
              - {name: late_mlp, structure: lora, layers: "4...7", modules: [mlp.up], rank: 8}
            """))
        XCTAssertEqual(checked.groups.map(\.name), ["early", "late", "late_mlp"])
        XCTAssertEqual(checked.group(covering: Pair(layer: 5, module: "mlp.up"))?.name, "late_mlp")
        XCTAssertEqual(checked.group(covering: Pair(layer: 5, module: "k"))?.name, "late")
    }

    /// Specs built in code (import-peft, prune) go through the same rules.
    func testProgrammaticSpecIsCheckedToo() {
        let here = SourceLocation(path: "built", line: 1, column: 1)
        let spec = AdapterSpec(
            path: "built", version: 1, name: "Built",
            model: ModelSpec(layers: 2, modules: [ModelModule(name: "fc", outFeatures: 8, inFeatures: 8, location: here)],
                             location: here),
            groups: [AdapterGroup(name: "fc", structure: .lora, layers: [0, 5], modules: ["fc"], rank: .uniform(0),
                                  location: here)],
            location: here)
        let (checked, diagnostics) = SpecChecker.check(spec)
        XCTAssertNil(checked)
        XCTAssertEqual(diagnostics.map(\.message), [
            "'rank' must be a positive integer, found 0",
            "layer 5 is out of range: the model has 2 layers (0..<2)",
        ])
    }

    func testLoRARankAboveMinOutInWarns() throws {
        let checked = try XCTUnwrap(SpecTestSupport.checked("""
            adaptc: 1
            name: Small
            model: {layers: 1, modules: {fc: [8, 4]}}
            adapters:
              - {name: fc, structure: lora, modules: [fc], rank: 6}
            """))
        XCTAssertEqual(checked.diagnostics.map(\.description), [
            "Specs/test.adapt.yaml:5:48: warning: rank 6 exceeds min(out, in) = 4 of module 'fc'; its ΔW cannot have a higher rank",
        ])
    }
}
