import XCTest
@testable import AdaptcCore

/// The `init:` keys of the tensor methods (DESIGN §3): `tolerance` (tt-svd,
/// cp-als), `sweeps` (hooi), `iterations` (loftq, cp-als) and `residual` (the
/// tensor methods) are parsed, and refused with their location where they do
/// not apply or are out of range.
final class TensorInitSettingsTests: XCTestCase {
    private func spec(_ structure: String, _ initialisation: String, extra: String = "rank: 4") -> String {
        """
        adaptc: 1
        name: Net
        model: {layers: 4, modules: {q: [32, 32], v: [32, 32]}}
        adapters:
          - name: g
            structure: \(structure)
            modules: [q, v]
            \(extra)
            init: \(initialisation)
        """
    }

    private func firstError(_ yaml: String) -> Diagnostic? {
        SpecTestSupport.diagnostics(yaml).first { $0.severity == .error }
    }

    func testKeysAreParsed() throws {
        let tt = try XCTUnwrap(SpecTestSupport.checked(spec("tensor-train", "{method: tt-svd, tolerance: 0.05, residual: false}")))
        XCTAssertEqual(tt.groups[0].group.initialization.method, .ttSVD)
        XCTAssertEqual(tt.groups[0].group.initialization.tolerance, 0.05)
        XCTAssertEqual(tt.groups[0].group.initialization.residual, false)
        let tucker = try XCTUnwrap(SpecTestSupport.checked(spec("tucker", "{method: hooi, sweeps: 7}")))
        XCTAssertEqual(tucker.groups[0].group.initialization.method, .hooi)
        XCTAssertEqual(tucker.groups[0].group.initialization.sweeps, 7)
        XCTAssertNil(tucker.groups[0].group.initialization.residual, "unset: the method's default (true)")
        let cp = try XCTUnwrap(SpecTestSupport.checked(spec("cp", "{method: cp-als, iterations: 50, tolerance: 1e-8, seed: 3}")))
        XCTAssertEqual(cp.groups[0].group.initialization.iterations, 50)
        XCTAssertEqual(cp.groups[0].group.initialization.tolerance, 1e-8)
    }

    func testRefusals() {
        let cases: [(structure: String, initialisation: String, at: String, keyword: String)] = [
            ("tensor-train", "{method: tt-svd, tolerance: 0}", "9:28", "between 0 and 1"),
            ("tensor-train", "{method: tt-svd, tolerance: 1.5}", "9:28", "between 0 and 1"),
            ("tensor-train", "{method: tt-svd, tolerance: .nan}", "9:28", "between 0 and 1"),
            ("tucker", "{method: hosvd, tolerance: 0.1}", "9:27", "applies only to init methods 'tt-svd' and 'cp-als'"),
            ("tensor-train", "{method: hooi}", "9:12", "does not fit a tensor-train group"),
            ("cp", "{method: hooi}", "9:12", "does not fit a cp group"),
            ("tucker", "{method: hosvd, sweeps: 3}", "9:27", "applies only to init method 'hooi'"),
            ("tucker", "{method: hooi, sweeps: 0}", "9:26", "between 1 and 1000"),
            ("cp", "{method: cp-als, iterations: 0}", "9:28", "between 1 and 100000"),
            ("tensor-train", "{method: tt-svd, iterations: 3}", "9:28", "applies only to init method 'loftq'"),
            ("tensor-train", "{method: zero, residual: true}", "9:26", "applies only to the tensor init methods"),
            ("tensor-train", "{method: tt-svd, residual: 1}", "9:38", "must be true or false"),
        ]
        for c in cases {
            let yaml = spec(c.structure, c.initialisation)
            guard let error = firstError(yaml) else {
                XCTFail("\(c.initialisation): no error")
                continue
            }
            XCTAssertTrue(error.description.hasPrefix("\(SpecTestSupport.path):\(c.at): error: "), "\(c.initialisation): \(error)")
            XCTAssertTrue(error.message.contains(c.keyword), "\(c.initialisation): '\(error.message)' lacks '\(c.keyword)'")
        }
    }
}
