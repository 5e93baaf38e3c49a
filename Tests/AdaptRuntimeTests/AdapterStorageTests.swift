import XCTest
import AdaptRuntime

/// `AdapterStorage`'s buffers: prepared gradients cover only the prefix of
/// prepared state that has gradients, and clearing them (the end of every
/// finishBackward) reaches each float, in blocks over threads or not.
final class AdapterStorageTests: XCTestCase {
    func testPreparedGradientsCoverTheirPrefixAndClearWhole() {
        // Two whole blocks of 2^18 floats and a remainder, so the last block is short.
        let count = 2 * (1 << 18) + 5
        for threads in [1, 2] {
            let storage = AdapterStorage(parameterCount: 3, preparedCount: count + 100, preparedGradientCount: count,
                                         threads: threads)
            XCTAssertEqual(storage.prepared.count, count + 100)
            XCTAssertEqual(storage.preparedGradients.count, count)
            storage.preparedGradients.update(repeating: .nan)
            storage.zeroPreparedGradients()
            XCTAssertNil(storage.preparedGradients.firstIndex { $0 != 0 }, "\(threads) threads")
        }
        // Without a count, gradients cover all prepared state; with none, clearing is a no-op.
        XCTAssertEqual(AdapterStorage(parameterCount: 1, preparedCount: 7).preparedGradients.count, 7)
        let none = AdapterStorage(parameterCount: 1, preparedCount: 7, preparedGradientCount: 0)
        XCTAssertEqual(none.preparedGradients.count, 0)
        none.zeroPreparedGradients()
    }
}
