import XCTest
import AdaptRuntime

/// `peakLiveFloats` counts what is live at once, not how far into the
/// workspace a program reaches (the defect `adaptc plan` had: it printed the
/// high-water mark as the peak intermediate).
final class LivenessTests: XCTestCase {
    let x = MatrixView("x", in: .input, indices: ("n", "i"), shape: (.tokens, .fixed(8)))
    let a = MatrixView("A", in: .parameters, indices: ("r", "i"), shape: (.fixed(2), .fixed(8)))
    let b = MatrixView("B", in: .parameters, offset: .fixed(16), indices: ("o", "r"), shape: (.fixed(4), .fixed(2)))
    let y = MatrixView("y", in: .output, indices: ("n", "o"), shape: (.tokens, .fixed(4)))

    func z(at offset: Extent) -> MatrixView {
        MatrixView("z", in: .workspace, offset: offset, indices: ("n", "r"), shape: (.tokens, .fixed(2)))
    }

    func testIntermediatesWhoseLivesDoNotMeetCountOnce() {
        let (z1, z2) = (z(at: .fixed(0)), z(at: Extent.tokens * 2))
        let program = Program([[Contraction(z1, x, a, accumulate: false)], [Contraction(y, z1, b, accumulate: true)],
                               [Contraction(z2, x, a, accumulate: false)], [Contraction(y, z2, b, accumulate: true)]])
        for n in [1, 7, 64] {
            XCTAssertEqual(program.peakLiveFloats(in: .workspace, tokens: n), 2 * n, "n \(n): z1 is dead when z2 is born")
        }
    }

    func testIntermediatesLiveTogetherAddUp() {
        let (z1, z2) = (z(at: .fixed(0)), z(at: Extent.tokens * 2))
        let program = Program([[Contraction(z1, x, a, accumulate: false), Contraction(z2, x, a, accumulate: false)],
                               [Contraction(y, z1, b, accumulate: true)], [Contraction(y, z2, b, accumulate: true)]])
        XCTAssertEqual(program.peakLiveFloats(in: .workspace, tokens: 5), 20)
        XCTAssertEqual(program.peakLiveFloats(in: .output, tokens: 5), 20, "y is written and read by +=")
    }

    func testAReusedSpanIsTheNewestWrite() {
        // z written, read, written again in place, read: never more than one z live.
        let z1 = z(at: .fixed(0))
        let program = Program([[Contraction(z1, x, a, accumulate: false)], [Contraction(y, z1, b, accumulate: true)],
                               [Contraction(z1, x, a, accumulate: false)], [Contraction(y, z1, b, accumulate: true)]])
        XCTAssertEqual(program.peakLiveFloats(in: .workspace, tokens: 3), 6)
    }
}
