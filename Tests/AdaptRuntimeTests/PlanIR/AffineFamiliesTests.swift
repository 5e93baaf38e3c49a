import XCTest
import AdaptRuntime

/// Index sources: programs that differ only in where their owned tensors sit
/// become one family whose offsets are exact affine functions of the indices.
/// Every family is checked member by member against the offsets it replaces.
final class AffineFamiliesTests: XCTestCase {
    /// Each member's offsets recomputed from its family.
    private func assertReproduces(_ families: [AffineFamily], indices: [[Int]], offsets: [[Int]],
                                  file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(families.flatMap(\.members).sorted(), Array(offsets.indices), "every member in one family", file: file, line: line)
        for family in families {
            XCTAssertEqual(family.members, family.members.sorted(), file: file, line: line)
            for m in family.members {
                XCTAssertEqual(family.offsets.map { $0.value(at: indices[m]) }, offsets[m], "member \(m)", file: file, line: line)
            }
        }
    }

    func testALayerByModuleLayoutIsOneFamily() {
        // lora A at 65536·l + 8192·m, B 32768 further: 24 layers × 4 modules.
        let indices = (0..<96).map { [$0 / 4, $0 % 4] }
        let offsets = indices.map { [65536 * $0[0] + 8192 * $0[1], 65536 * $0[0] + 8192 * $0[1] + 32768] }
        let families = AffineFamilies.partition(count: 96, key: { _ in 0 }, indices: { indices[$0] }, offsets: { offsets[$0] })
        XCTAssertEqual(families.count, 1)
        XCTAssertEqual(families[0].offsets, [AffineOffset(base: 0, strides: [65536, 8192]), AffineOffset(base: 32768, strides: [65536, 8192])])
        assertReproduces(families, indices: indices, offsets: offsets)
    }

    func testDifferentShapesNeverShareAFamily() {
        let indices = (0..<8).map { [$0, 0] }
        let offsets = indices.map { [100 * $0[0]] }
        let families = AffineFamilies.partition(count: 8, key: { $0 % 2 }, indices: { indices[$0] }, offsets: { offsets[$0] })
        XCTAssertEqual(families.map(\.members), [[0, 2, 4, 6], [1, 3, 5, 7]])
        assertReproduces(families, indices: indices, offsets: offsets)
    }

    func testOffsetsThatAreNotAffineSplit() {
        // Layers 0, 1, 2 at 0, 10, 30: no one stride; a prefix fits, the rest starts anew.
        let indices = [[0, 0], [1, 0], [2, 0], [3, 0]]
        let offsets = [[0], [10], [30], [40]]
        let families = AffineFamilies.partition(count: 4, key: { _ in 0 }, indices: { indices[$0] }, offsets: { offsets[$0] })
        XCTAssertGreaterThan(families.count, 1)
        assertReproduces(families, indices: indices, offsets: offsets)
        XCTAssertNil(AffineFamilies.fit(indices: indices, offsets: offsets))
    }

    func testAStrideThatDoesNotDivideIsNoFit() {
        // Layers 0 and 2 at 0 and 5: the stride would be 2.5.
        XCTAssertNil(AffineFamilies.fit(indices: [[0], [2]], offsets: [[0], [5]]))
        XCTAssertEqual(AffineFamilies.fit(indices: [[0], [2]], offsets: [[0], [6]]), [AffineOffset(base: 0, strides: [3])])
    }

    func testIndicesThatNeverVaryAloneAreCheckedNotGuessed() {
        // (0,0) → 0 and (1,1) → 7: no two members differ in one index only, so no stride can be
        // read off; the fit must not invent one that happens to pass.
        XCTAssertNil(AffineFamilies.fit(indices: [[0, 0], [1, 1]], offsets: [[0], [7]]))
        let families = AffineFamilies.partition(count: 2, key: { _ in 0 }, indices: { [[0, 0], [1, 1]][$0] }, offsets: { [[0], [7]][$0] })
        XCTAssertEqual(families.count, 2)
    }

    func testAStageReadAsBlocksAndLanes() {
        // 7 modules a layer, 32 layers; modules 0–3 and 6 one shape, 4–5 another; offsets per (layer, module).
        let count = 224
        let shape = { (i: Int) in [4, 5].contains(i % 7) ? 1 : 0 }
        let offsets = (0..<count).map { [1_000_000 * ($0 / 7) + 1000 * ($0 % 7)] }
        let (blockSize, families) = AffineFamilies.stage(count: count, key: shape, offsets: { offsets[$0] })
        XCTAssertEqual(blockSize, 7)
        XCTAssertEqual(families.count, 2)
        assertReproduces(families, indices: (0..<count).map { [$0 / 7, $0 % 7] }, offsets: offsets)
        // Contiguous offsets need no blocks: R is the whole stage.
        let plain = AffineFamilies.stage(count: 12, key: { _ in 0 }, offsets: { [64 * $0] })
        XCTAssertEqual(plain.blockSize, 12)
        XCTAssertEqual(plain.families.count, 1)
    }

    func testABlockSizeNeedNotDivideTheStage() {
        // 11 members (a layer-fused backward's last stage): 0–7 a tensor's two halves for each of
        // 4 modules, offset 32768·(i % 2) − 65536·(i / 2); 8–10 other shapes. Only R = 2 makes
        // 0–7 one family, and 2 does not divide 11.
        let count = 11
        let shape = { (i: Int) in i < 8 ? 0 : i }
        let offsets = (0..<count).map { $0 < 8 ? [196_608 + 32768 * ($0 % 2) - 65536 * ($0 / 2)] : [7 * $0] }
        let (blockSize, families) = AffineFamilies.stage(count: count, key: shape, offsets: { offsets[$0] })
        XCTAssertEqual(blockSize, 2)
        XCTAssertEqual(families.map(\.members), [Array(0..<8), [8], [9], [10]])
        assertReproduces(families, indices: (0..<count).map { [$0 / 2, $0 % 2] }, offsets: offsets)
    }

    func testParameterRunsExpandToTheirKeysAndOffsets() {
        let run = ParameterRun(group: "lora", role: .B, module: "attention.self.query", layers: [2, 3, 5], shape: [768, 8],
                               offset: 100, layerStride: 10)
        XCTAssertEqual(run.tensors.map(\.key), ["lora.2.attention.self.query.B", "lora.3.attention.self.query.B", "lora.5.attention.self.query.B"])
        XCTAssertEqual(run.tensors.map(\.offset), [100, 110, 130])
        let literal = ParameterTensor(key: "lora.shared.q.A", shape: [2, 2], offset: 105)
        XCTAssertEqual(ParameterTensor.layout([literal], runs: [run]).map(\.offset), [100, 105, 110, 130])
    }
}
