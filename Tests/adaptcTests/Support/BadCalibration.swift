import AdaptRuntime
import AdaptcCore
import AdaptTestSupport
import XCTest

extension CLISandbox {
    /// `adaptc prune SPEC` refuses bad calibration with one line, exit 1 and
    /// nothing written: a pair's rows missing (`2.v`), rows one column too wide
    /// (`1.q`), a NaN (`0.v`), a threshold of 0, 1.5 or NaN. The spec's pairs
    /// are `pairs` (q and v modules over layers 0…2, rows of width 12), with
    /// `adapter.safetensors` and a good `calib.safetensors` already written.
    /// - Parameters:
    ///   - spec: The spec's file in the sandbox.
    ///   - pairs: Every pair of the spec.
    ///   - seed: Seed of the rows written.
    ///   - context: Said in every failure.
    func assertBadCalibrationRefused(spec: String, pairs: [Pair], seed: UInt64, context: String,
                                     file: StaticString = #filePath, line: UInt = #line) throws {
        var random = TestRandom(seed: seed)
        func calib(_ name: String, _ edit: (Pair, inout [Float], inout [Int]) -> Bool) throws {
            var writer = SafetensorsWriter()
            for pair in pairs {
                var shape = [5, 12]
                var x = random.floats(60)
                if edit(pair, &x, &shape) { writer.add(pair.key, floats: x, shape: shape) }
            }
            try writer.write(to: path(name))
        }
        try calib("missing.safetensors") { pair, _, _ in pair.key != "2.v" }
        try calib("wide.safetensors") { pair, x, shape in
            if pair.key == "1.q" { shape[1] = 13; x += [Float](repeating: 0, count: 5) }
            return true
        }
        try calib("nan.safetensors") { pair, x, _ in
            if pair.key == "0.v" { x[3] = .nan }
            return true
        }
        for (extra, calibration, mentions) in [([String](), "missing.safetensors", "2.v"), ([], "wide.safetensors", "1.q"),
                                               ([], "nan.safetensors", "NaN"), (["--threshold", "0"], "calib.safetensors", "threshold"),
                                               (["--threshold", "1.5"], "calib.safetensors", "threshold"),
                                               (["--threshold", "nan"], "calib.safetensors", "threshold")] {
            let before = listing()
            let result = try adaptc(["prune", spec, "--adapter", "adapter.safetensors", "--calib", calibration, "-o", "out"] + extra)
            XCTAssertEqual(result.status, 1, "\(context) \(result)", file: file, line: line)
            XCTAssertEqual(result.stderrLines.count, 1, "\(context) \(result)", file: file, line: line)
            XCTAssertTrue(result.stderr.hasPrefix("adaptc: error: ") && result.stderr.contains(mentions),
                          "\(context): expected '\(mentions)'\n\(result)", file: file, line: line)
            XCTAssertEqual(listing(), before, "\(context): nothing may be written\n\(result)", file: file, line: line)
        }
    }
}
