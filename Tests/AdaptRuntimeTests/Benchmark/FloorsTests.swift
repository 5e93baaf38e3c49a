import XCTest
import AdaptRuntime

/// The floors' kernels do what the benchmarks count them for (DESIGN §8): the
/// streaming pass reads every input float once, adds to every accumulated
/// float once and writes every fresh one, touching nothing beside them; the
/// FMA loop does the steps, and so the FLOPs, it reports. Nothing is timed.
final class FloorsTests: XCTestCase {
    /// Lengths that reach the vector tails and the pass's block boundaries.
    private let lengths = [1, 15, 16, 17, 63, 65, StreamingPass.blockFloats - 1, StreamingPass.blockFloats + 37,
                           3 * StreamingPass.blockFloats]
    private let guardFloats = 32, sentinel: Float = -7

    /// Each buffer inside a larger allocation whose margins hold `sentinel`.
    private func guarded(_ values: [Float]) -> UnsafeMutableBufferPointer<Float> {
        let whole = UnsafeMutableBufferPointer<Float>.allocate(capacity: values.count + 2 * guardFloats)
        whole.initialize(repeating: sentinel)
        _ = UnsafeMutableBufferPointer(rebasing: whole[guardFloats..<(guardFloats + values.count)]).initialize(from: values)
        return UnsafeMutableBufferPointer(rebasing: whole[guardFloats..<(guardFloats + values.count)])
    }

    private func margins(_ buffer: UnsafeMutableBufferPointer<Float>) -> [Float] {
        let base = buffer.baseAddress! - guardFloats
        return (0..<guardFloats).map { base[$0] } + (0..<guardFloats).map { buffer.baseAddress![buffer.count + $0] }
    }

    private func release(_ buffer: UnsafeMutableBufferPointer<Float>) { (buffer.baseAddress! - guardFloats).deallocate() }

    func testStreamingPassTouchesEveryFloatOnceAndNothingElse() {
        for threads in [1, 2] {
            // Positive integers: a float skipped or read twice changes the sum, and every partial sum is exact.
            let inputValues = lengths.enumerated().map { b, n in (0..<n).map { Float(($0 * 7 + b) % 13 + 1) } }
            let startValues = lengths.enumerated().map { b, n in (0..<n).map { Float(($0 + 3 * b) % 11) - 5 } }
            let inputs = inputValues.map(guarded), accumulated = startValues.map(guarded)
            let written = lengths.map { guarded([Float](repeating: 0, count: $0)) }
            defer { (inputs + accumulated + written).forEach(release) }
            let pass = StreamingPass(reading: inputs.map { UnsafeBufferPointer($0) }, accumulating: accumulated,
                                     writing: written, threads: threads)
            let floats = lengths.reduce(0, +)
            XCTAssertEqual(pass.bytes, 4 * (floats + 2 * floats + floats))
            let expectedSum = inputValues.joined().reduce(0.0) { $0 + Double($1) }
            XCTAssertEqual(pass.run(delta: 2), expectedSum, "threads \(threads)")
            XCTAssertEqual(pass.run(delta: 3), expectedSum, "threads \(threads)")
            for (b, buffer) in accumulated.enumerated() {
                XCTAssertEqual(Array(buffer), startValues[b].map { $0 + 5 }, "accumulated buffer \(b), threads \(threads)")
            }
            for (b, buffer) in written.enumerated() {
                XCTAssertEqual(Array(buffer), [Float](repeating: 3, count: lengths[b]), "written buffer \(b), threads \(threads)")
            }
            for (b, buffer) in inputs.enumerated() { XCTAssertEqual(Array(buffer), inputValues[b], "input \(b) is read only") }
            for buffer in inputs + accumulated + written {
                XCTAssertEqual(margins(buffer), [Float](repeating: sentinel, count: 2 * guardFloats), "outside a buffer")
            }
        }
    }

    func testStreamingPassOverItsOwnBuffers() {
        let pass = StreamingPass(readingFloats: [100, 70_000], accumulatingFloats: [33], writingFloats: [5], threads: 2)
        XCTAssertEqual(pass.bytes, 4 * (70_100 + 2 * 33 + 5))
        XCTAssertEqual(pass.run(), 70_100, "inputs start at 1")
    }

    func testFMALoopDoesTheStepsItReports() {
        let width = FMALoop.width
        XCTAssertGreaterThan(width, 0)
        // s ← s·1 + 1 from 0: each chain counts its steps.
        let counted = FMALoop.run(flops: 2 * width * 10, threads: 1, chunks: 1, a: 1, b: 1)
        XCTAssertEqual(counted.flops, 2 * width * 10)
        XCTAssertEqual(counted.sum, Double(width * 10))
        // s ← s·½ + 1 from 0 is 2 − 2^(1−t) after t steps, exact in float for t ≤ 24: the multiply is done too.
        let halved = FMALoop.run(flops: 2 * width * 10, threads: 1, chunks: 1, a: 0.5, b: 1)
        XCTAssertEqual(halved.sum, Double(width) * (2 - 0x1p-9))
        // Rounded up to whole steps, every chunk run once, on two threads.
        let spread = FMALoop.run(flops: 2 * width * 8 * 100 + 1, threads: 2, chunks: 8, a: 1, b: 1)
        XCTAssertEqual(spread.flops, 2 * width * 8 * 101)
        XCTAssertEqual(spread.sum, Double(8 * width * 101))
        XCTAssertEqual(FMALoop.run(flops: 0, threads: 2).flops, 0)
    }
}
