import AdaptcCore
import XCTest

/// The pruned spec is the user's text edited in place: names, keys, order and
/// comments kept; `layers:`, `overrides:` and a shared group's `rank:`
/// rewritten with a comment; the new shared group right after its source.
final class PrunedSpecTextTests: XCTestCase {
    static let source = """
        # A spec written the way people write them: comments everywhere,
        # `layers` first in its item, overrides in flow style.
        adaptc: 1
        name: Edit
        model:
          layers: 4
          modules:
            q: [8, 8]
            k: [8, 8]
            v: [8, 8]
        adapters:
          # the attention adapter
          - layers: "0..<4"   # all four
            name: attn
            structure: lora
            modules: [q, v]
            rank: 4            # group rank
            alpha: 8
            overrides: {"1.v": {alpha: 2}, "0.q": {rank: 2}}
            init: {method: gaussian}

          # keys, one adapter for all layers
          - name: keys
            structure: lora
            modules: [k]
            shared: true
            rank: 4   # shared rank
        prune: {threshold: 0.9}   # the user's settings stay

        """

    /// Decisions made by hand: attn keeps layers 1 and 3 (1.q → rank 3, 3.q → rank 1,
    /// the v's keep all 4), layers 0 and 2 go to attn_shared; keys drops to rank 2.
    static func result() -> PruneResult {
        func pair(_ layer: Int, _ module: String, _ after: Int?, before: Int = 4) -> PairPruning {
            PairPruning(pair: Pair(layer: layer, module: module), importance: 1, rankBefore: before, rankAfter: after,
                        singularValues: [], componentEnergies: [], keptComponents: [], lostEnergy: after == 1 ? 0.08 : 0.05, vanished: false)
        }
        let attn = GroupPruning(
            name: "attn", structure: .lora, pruned: true,
            layerShares: [(0, 0.02), (1, 0.5), (2, 0.03), (3, 0.45)], keptLayers: [1, 3], droppedLayers: [0, 2],
            sharedGroupName: "attn_shared", sharedRank: nil,
            pairs: [pair(0, "q", nil, before: 2), pair(0, "v", nil), pair(1, "q", 3), pair(1, "v", 4), pair(2, "q", nil), pair(2, "v", nil),
                    pair(3, "q", 1), pair(3, "v", 4)])
        let keys = GroupPruning(name: "keys", structure: .lora, pruned: true, layerShares: [], keptLayers: [0, 1, 2, 3],
                                droppedLayers: [], sharedGroupName: nil, sharedRank: 2,
                                pairs: (0..<4).map { pair($0, "k", 2) })
        return PruneResult(settings: PruneSettings(threshold: 0.9), groups: [attn, keys], weights: [:])
    }

    func testEditsOnlyWhatPruningChangedAndKeepsTheRest() throws {
        let checked = try SpecLoader.check(source: Self.source, path: "edit.adapt.yaml")
        let edited = PrunedSpecText.edit(source: Self.source, checked: checked, result: Self.result())
        let expected = """
            # A spec written the way people write them: comments everywhere,
            # `layers` first in its item, overrides in flow style.
            adaptc: 1
            name: Edit
            model:
              layers: 4
              modules:
                q: [8, 8]
                k: [8, 8]
                v: [8, 8]
            adapters:
              # the attention adapter
              - layers: [1, 3]  # LoRA-drop: kept 2 of 4 layers (95.0% of the group's output energy); layers 0, 2 → attn_shared
                name: attn
                structure: lora
                modules: [q, v]
                rank: 4            # group rank
                alpha: 8
                overrides:  # ranks from LoRA-drop (threshold 0.9, scope pair)
                  "1.q": {rank: 3}  # LoRA-drop: 3 of 4 components, 95.0% of its output energy
                  "1.v": {alpha: 2}
                  "3.q": {rank: 1}  # LoRA-drop: 1 of 4 components, 92.0% of its output energy
                init: {method: gaussian}
              # attn_shared: LoRA-drop gave layers 0, 2 of 'attn' (5.0% of its output energy)
              # one adapter per module, the rank-4 SVD of their mean ΔW.
              - name: attn_shared
                structure: lora
                layers: [0, 2]
                modules: [q, v]
                shared: true
                rank: 4
                alpha: 8

              # keys, one adapter for all layers
              - name: keys
                structure: lora
                modules: [k]
                shared: true
                rank: 2  # LoRA-drop rank level: was 4; each module keeps ≥ 90.0% of its output energy
            prune: {threshold: 0.9}   # the user's settings stay

            """
        XCTAssertEqual(edited, expected, "\n--- got ---\n\(edited)")

        // What the edited text means, as the checker reads it.
        let pruned = try SpecLoader.check(source: edited, path: "pruned.adapt.yaml")
        XCTAssertEqual(pruned.groups.map(\.name), ["attn", "attn_shared", "keys"])
        let attn = pruned.groups[0], shared = pruned.groups[1], keys = pruned.groups[2]
        XCTAssertEqual(attn.layers, [1, 3])
        XCTAssertEqual([attn.rank(layer: 1, module: "q"), attn.rank(layer: 1, module: "v"), attn.rank(layer: 3, module: "q"),
                        attn.rank(layer: 3, module: "v")], [3, 4, 1, 4])
        XCTAssertEqual(attn.alpha(layer: 1, module: "v"), 2)
        XCTAssertEqual(attn.scale(layer: 1, module: "q"), 8.0 / 3)
        XCTAssertTrue(shared.group.shared)
        XCTAssertEqual(shared.layers, [0, 2])
        XCTAssertEqual(shared.effectiveRank, 4)
        XCTAssertEqual(keys.effectiveRank, 2)
    }

    /// A group without `layers:` gets one after its name; one without
    /// `overrides:` gets them after `rank:`, before the new shared group at the end of the file.
    func testInsertsMissingKeysWhereTheyRead() throws {
        let source = """
            adaptc: 1
            name: Small
            model:
              layers: 3
              modules: {q: [8, 8]}
            adapters:
              - name: g
                structure: lora
                modules: [q]
                rank: 4
            """
        let checked = try SpecLoader.check(source: source, path: "s.adapt.yaml")
        func pair(_ l: Int, _ after: Int?) -> PairPruning {
            PairPruning(pair: Pair(layer: l, module: "q"), importance: 1, rankBefore: 4, rankAfter: after, singularValues: [],
                        componentEnergies: [], keptComponents: [], lostEnergy: 0, vanished: after == 1)
        }
        let group = GroupPruning(name: "g", structure: .lora, pruned: true, layerShares: [(0, 0.7), (1, 0.25), (2, 0.05)],
                                 keptLayers: [0, 1], droppedLayers: [2], sharedGroupName: "g_shared", sharedRank: nil,
                                 pairs: [pair(0, 4), pair(1, 1), pair(2, nil)])
        let edited = PrunedSpecText.edit(source: source, checked: checked,
                                         result: PruneResult(settings: PruneSettings(threshold: 0.9, scope: .global), groups: [group], weights: [:]))
        let lines = edited.components(separatedBy: "\n")
        XCTAssertEqual(lines[6], "  - name: g")
        XCTAssertTrue(lines[7].hasPrefix("    layers: [0, 1]  # LoRA-drop: kept 2 of 3 layers (95.0%"), lines[7])
        XCTAssertEqual(lines[10], "    rank: 4")
        XCTAssertEqual(lines[11], "    overrides:  # ranks from LoRA-drop (threshold 0.9, scope global)")
        XCTAssertEqual(lines[12], "      \"1.q\": {rank: 1}  # no component kept (global scope): B = 0")
        XCTAssertTrue(lines[15].hasSuffix("- name: g_shared"), lines[15])
        let pruned = try SpecLoader.check(source: edited, path: "p.adapt.yaml")
        XCTAssertEqual(pruned.groups.map { $0.layers }, [[0, 1], [2]])
    }
}
