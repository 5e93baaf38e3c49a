import XCTest
import AdaptRuntime

final class GradientClippingTests: XCTestCase {
    func testClipsToMaxNorm() throws {
        var gradients: [Float] = [3, 4, 0, 0]  // norm 5
        let norm = try gradients.withUnsafeMutableBufferPointer { try GradientClipping.clipGlobalNorm($0, maxNorm: 1) }
        XCTAssertEqual(norm, 5)
        XCTAssertEqual(Double(gradients[0]), 3 / (5 + 1e-6), accuracy: 1e-7)
        XCTAssertEqual(Double(gradients[1]), 4 / (5 + 1e-6), accuracy: 1e-7)
    }

    func testBelowMaxNormUnchanged() throws {
        var gradients: [Float] = [0.3, -0.4]
        let norm = try gradients.withUnsafeMutableBufferPointer { try GradientClipping.clipGlobalNorm($0, maxNorm: 1) }
        XCTAssertEqual(Double(norm), 0.5, accuracy: 1e-7)
        XCTAssertEqual(gradients, [0.3, -0.4])
    }

    func testNonFiniteThrowsAndChangesNothing() {
        var gradients: [Float] = [30, .infinity, 1]
        XCTAssertThrowsError(try gradients.withUnsafeMutableBufferPointer { try GradientClipping.clipGlobalNorm($0, maxNorm: 1) }) {
            XCTAssertEqual($0 as? AdapterError, .nonFiniteGradient(key: "gradients", index: 1))
        }
        XCTAssertEqual(gradients[0], 30)
    }
}
