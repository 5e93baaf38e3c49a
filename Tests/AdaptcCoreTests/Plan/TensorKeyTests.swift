import AdaptRuntime
import AdaptcCore
import Foundation
import XCTest

/// `TensorKey` is the one reader and writer of stored tensors' keys: every key
/// the planner lays out for the example specs reads back as itself, with the
/// role its shape says, and keys of another structure or layout do not read.
final class TensorKeyTests: XCTestCase {
    /// Every example spec (`Specs/*.adapt.yaml`) by file name, planned.
    static func examplePlans() throws -> [(spec: String, plan: Plan)] {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent()
        let folder = root.appendingPathComponent("Specs")
        let specs = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.hasSuffix(".adapt.yaml") }.sorted()
        XCTAssertGreaterThan(specs.count, 10)
        return try specs.map { ($0, try SpecLoader.loadPlanned(path: folder.appendingPathComponent($0).path).1) }
    }

    func testEveryPlannedKeyOfTheExampleSpecsReadsBackAsItself() throws {
        var roles: Set<String> = []
        for (spec, plan) in try Self.examplePlans() {
            for group in plan.groups {
                for tensor in plan.parameters where tensor.key.hasPrefix(group.name + ".") {
                    guard let key = TensorKey(parsing: tensor.key, structure: group.structure) else {
                        XCTFail("\(spec): \(tensor.key) does not read as a \(group.structure) key")
                        continue
                    }
                    XCTAssertEqual(key.description, tensor.key, spec)
                    XCTAssertEqual(key.group, group.name, spec)
                    switch key.role {
                    case .loraA: XCTAssertEqual(tensor.shape.count, 2); roles.insert("A")
                    case .loraB: XCTAssertEqual(tensor.shape.count, 2); roles.insert("B")
                    case .magnitude: XCTAssertEqual(tensor.shape.count, 1); roles.insert("m")
                    case .core: XCTAssertEqual(tensor.shape.count, 3, tensor.key); roles.insert("core")
                    case .tuckerCore: roles.insert("tucker core")
                    case .factor: XCTAssertEqual(tensor.shape.count, 2, tensor.key); roles.insert("factor")
                    }
                    if case .loraA(.layer, _) = key.role {
                        XCTAssertEqual(plan.groups.first { $0.name == key.group }?.pairs.contains { $0.key == key.pair }, true,
                                       "\(tensor.key): its pair \(key.pair ?? "nil") is one of the group's")
                    }
                }
            }
        }
        XCTAssertEqual(roles, ["A", "B", "m", "core", "tucker core", "factor"], "the example specs cover every role")
    }

    func testModulesWithDotsAndEveryRole() {
        let cases: [(String, String, TensorKey.Role)] = [
            ("attn.3.attention.self.query.A", "lora", .loraA(.layer(3), module: "attention.self.query")),
            ("attn.shared.q_proj.B", "lora", .loraB(.shared, module: "q_proj")),
            ("qv.0.query.magnitude", "lora", .magnitude(layer: 0, module: "query")),
            ("tt.core.4", "tensor-train", .core(4)),
            ("lotr.core", "tucker", .tuckerCore),
            ("lotr.factor.in.0", "tucker", .factor(mode: "in.0")),
            ("cp.factor.layer", "cp", .factor(mode: "layer")),
        ]
        for (text, structure, role) in cases {
            let key = TensorKey(parsing: text, structure: structure)
            XCTAssertEqual(key?.role, role, text)
            XCTAssertEqual(key?.description, text)
        }
    }

    func testKeysOfAnotherLayoutDoNotRead() {
        for (text, structure) in [("attn.3.query.C", "lora"), ("attn.03.query.A", "lora"), ("attn.-1.query.A", "lora"),
                                  ("attn.3.A", "lora"), ("attn.shared.query.magnitude", "lora"), ("tt.core", "tensor-train"),
                                  ("tt.core.x", "tensor-train"), ("tt.factor.in", "tensor-train"), ("cp.core", "cp"),
                                  ("lotr.3.query.A", "tucker"), (".core.0", "tensor-train"), ("x.core.0", "dense")] {
            XCTAssertNil(TensorKey(parsing: text, structure: structure), "\(text) as \(structure)")
        }
    }
}
