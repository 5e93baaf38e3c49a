import AdaptRuntime
import XCTest

/// The blocks a parallel product is cut into: they cover the side exactly once,
/// every block but the last is a whole number of 16-wide panels, there are at
/// most `maximumCount`, and each carries at least `minimumWork` flops unless the
/// side is too short for two.
final class FixedBlocksTests: XCTestCase {
    func testBlocksCoverTheSideInPanelsWithEnoughWorkEach() {
        for extent in [0, 1, 15, 16, 17, 100, 1000, 1001, 4096, 100_003] {
            for unitWork in [0, 1, 32, 4096, 65_536, 10_000_000] {
                let blocks = FixedBlocks(extent: extent, unitWork: unitWork)
                let ranges = (0..<blocks.count).map { blocks[$0] }
                XCTAssertEqual(ranges.flatMap { Array($0) }, Array(0..<extent), "extent \(extent) unit \(unitWork)")
                XCTAssertLessThanOrEqual(blocks.count, FixedBlocks.maximumCount)
                XCTAssertEqual(blocks.length % 16, 0, "extent \(extent) unit \(unitWork)")
                if blocks.count > 1 {
                    XCTAssertGreaterThanOrEqual(blocks.length * unitWork, FixedBlocks.minimumWork, "extent \(extent) unit \(unitWork)")
                    XCTAssertFalse(ranges.contains(where: \.isEmpty), "extent \(extent) unit \(unitWork)")
                }
            }
        }
    }

    func testAWholeSideIsOneBlock() {
        for extent in [0, 1, 77, 5000] {
            let blocks = FixedBlocks(whole: extent)
            XCTAssertEqual(blocks.count, extent == 0 ? 0 : 1)
            if extent > 0 { XCTAssertEqual(blocks[0], 0..<extent) }
        }
    }
}
