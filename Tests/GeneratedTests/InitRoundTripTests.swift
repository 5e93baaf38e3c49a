import AdaptRuntime
import AdaptTestSupport
import AdaptcCore
import Foundation
import GeneratedAdapters
import XCTest

/// An app that loads what `adaptc init` wrote for a tensor group gets ΔW = the
/// principal tensor through the generated API (DESIGN §3): `tt-svd` on
/// Specs/tt-interleaved's shapes (an interleaved order, factorised modes), the
/// generated `TTInterleavedAdapter` loads the init file (`init` and `weights`
/// are outside the spec hash, so the committed generated code takes it) and its
/// `materialize` equals `W − residual` for every pair.
final class InitRoundTripTests: XCTestCase {
    func testGeneratedAdapterLoadsTheTTSVDInitAsThePrincipalTensor() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("adaptc-init-roundtrip-\(getpid())").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let source = try String(contentsOf: repositoryRoot.appendingPathComponent("Specs/tt-interleaved.adapt.yaml"), encoding: .utf8)
        let spec = source
            .replacingOccurrences(of: "  inputs: {mlp: [gate, up]}\n", with: "  inputs: {mlp: [gate, up]}\n  weights: {key: \"mlp.{layer}.{module}.weight\"}\n")
            .replacingOccurrences(of: "    rank: 4\n", with: "    rank: 4\n    init: {method: tt-svd}\n")
        XCTAssertNotEqual(spec, source)
        try spec.write(toFile: folder + "/tt.adapt.yaml", atomically: true, encoding: .utf8)

        // A base whose stacked tensor is low rank plus noise, so the principal tensor is far from zero.
        var random = TestRandom(seed: 51)
        let u = random.floats(64 * 3), v = random.floats(3 * 48)
        var base = SafetensorsWriter(metadata: ["format": "pt"])
        var weights: [String: [Float]] = [:]
        for layer in 0..<4 {
            for (m, module) in ["gate", "up"].enumerated() {
                let noise = random.floats(64 * 48, bound: 0.05)
                let w = (0..<(64 * 48)).map { e -> Float in
                    let (o, i) = (e / 48, e % 48)
                    return (0..<3).reduce(Float(0)) { $0 + u[o * 3 + $1] * v[$1 * 48 + i] } * Float(1 + layer + 2 * m) + noise[e]
                }
                weights["\(layer).\(module)"] = w
                base.add("mlp.\(layer).\(module).weight", floats: w, shape: [64, 48])
            }
        }
        try base.write(to: folder + "/base.safetensors")
        _ = try InitCommand.run(specPath: folder + "/tt.adapt.yaml", output: folder + "/init.safetensors", seed: 1,
                                basePath: folder + "/base.safetensors", residualPath: folder + "/residual.safetensors", threads: 1)

        let adapter = try TTInterleavedAdapter(weights: SafetensorsFile.read(path: folder + "/init.safetensors"), threads: 1)
        let residual = try SafetensorsFile.read(path: folder + "/residual.safetensors")
        var total = 0.0
        for layer in 0..<4 {
            for module in TTInterleavedAdapter.Module.allCases {
                let name = TTInterleavedAdapter.moduleName(module)
                let delta = try adapter.materialize(layer: layer, module: module)
                let expected = zip(weights["\(layer).\(name)"]!, try residual.floats("mlp.\(layer).\(name).weight")).map { $0 - $1 }
                XCTAssertLessThan(maxRelativeError(delta.map(Double.init), expected.map(Double.init)), 1e-5, "\(layer).\(name)")
                total += delta.reduce(0) { $0 + Double($1 * $1) }
            }
        }
        XCTAssertGreaterThan(total, 1, "the principal tensor is not zero")
    }
}
