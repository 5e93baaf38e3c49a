import Foundation
import XCTest

/// The OpenBLAS kernel family adaptc runs with (CKernels/blas_core.c): when
/// OpenBLAS does not know the CPU and falls back to narrower kernels, adaptc
/// chooses the widest family the CPU supports; OPENBLAS_CORETYPE, when set,
/// stands. OpenBLAS prints each choice ("Core: …") with OPENBLAS_VERBOSE=2.
final class BLASKernelFamilyCLITests: XCTestCase {
    /// 1 SSE, 2 AVX, 3 AVX2+FMA, 4 AVX-512 (F, BW, DQ, VL), as /proc/cpuinfo lists them.
    private func cpuLevel() throws -> Int {
        let info = try String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)
        guard let line = info.split(separator: "\n").first(where: { $0.hasPrefix("flags") }) else { return 1 }
        let flags = Set(line.split(separator: " ").map(String.init))
        if ["avx512f", "avx512bw", "avx512dq", "avx512vl"].allSatisfy(flags.contains) { return 4 }
        if flags.contains("avx2") && flags.contains("fma") { return 3 }
        return flags.contains("avx") ? 2 : 1
    }

    private func familyLevel(_ name: String) -> Int {
        switch name.lowercased() {
        case "skylakex", "cooperlake", "sapphirerapids": return 4
        case "haswell", "zen", "excavator", "steamroller", "piledriver": return 3
        case "sandybridge", "bulldozer": return 2
        default: return 1
        }
    }

    /// The "Core: NAME" lines OpenBLAS printed, in order.
    private func cores(_ environment: [String]) throws -> [String] {
        let sandbox = try CLISandbox()
        defer { sandbox.remove() }
        let spec = try sandbox.copySpec("tiny-qv.adapt.yaml")
        let result = try XCTUnwrap(sandbox.run(environment + [try Repository.adaptcBinary(), "check", spec],
                                               executable: "/usr/bin/env"))
        XCTAssertEqual(result.status, 0, result.stderr)
        return (result.stdout + result.stderr).split(separator: "\n").compactMap { line in
            line.hasPrefix("Core: ") ? String(line.dropFirst(6)).trimmingCharacters(in: .whitespaces) : nil
        }
    }

    func testWidestFamilyWhenUnset() throws {
        let chosen = try cores(["-u", "OPENBLAS_CORETYPE", "OPENBLAS_VERBOSE=2"])
        let last = try XCTUnwrap(chosen.last, "OpenBLAS printed no choice")
        let cpu = try cpuLevel()
        XCTAssertGreaterThanOrEqual(familyLevel(last), cpu, "kernels \(chosen) on a CPU of level \(cpu)")
    }

    func testUsersChoiceStands() throws {
        XCTAssertEqual(try cores(["OPENBLAS_CORETYPE=Prescott", "OPENBLAS_VERBOSE=2"]), ["Prescott"])
    }
}
