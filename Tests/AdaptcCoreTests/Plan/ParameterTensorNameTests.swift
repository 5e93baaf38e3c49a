import AdaptRuntime
import AdaptcCore
import Foundation
import XCTest

/// Every stored tensor the planner lays out carries its typed name
/// (`ParameterTensor.name`), which renders to its key; the same name comes
/// back from the key alone (as generated layouts build it), and the planner
/// says which mode each axis stands for.
final class ParameterTensorNameTests: XCTestCase {
    func testEveryPlannedTensorOfTheExampleSpecsHasATypedNameThatRendersToItsKey() throws {
        var tensors = 0
        for (spec, plan) in try TensorKeyTests.examplePlans() {
            for tensor in plan.parameters {
                tensors += 1
                guard let name = tensor.name else {
                    XCTFail("\(spec): \(tensor.key) has no typed name")
                    continue
                }
                XCTAssertEqual(name.description, tensor.key, spec)
                let group = try XCTUnwrap(plan.groups.first { $0.name == name.group }, "\(spec): \(tensor.key)'s group")
                XCTAssertEqual(TensorKey(parsing: tensor.key, structure: group.structure), name, "\(spec): \(tensor.key)")
                XCTAssertEqual(ParameterTensor(key: tensor.key, shape: tensor.shape, offset: tensor.offset).name, name,
                               "\(spec): \(tensor.key) read from its key alone")
                XCTAssertEqual(tensor.modes?.count, tensor.shape.count, "\(spec): \(tensor.key) names each axis's mode")
                if let layer = tensor.layer, let module = tensor.module {
                    XCTAssertTrue(group.pairs.contains { $0.layer == layer && $0.module == module },
                                  "\(spec): \(tensor.key) is of one of the group's pairs")
                }
            }
        }
        XCTAssertGreaterThan(tensors, 100)
    }

    /// The planner's modes are what it knows, not the layout: plans compare
    /// equal to generated layouts (which have none) and encode as before.
    func testModesAreLeftOutOfEqualityAndTheEncoding() throws {
        let planned = ParameterTensor(.loraA("attn", .layer(2), "attention.self.query"), modes: ["r", "in"], shape: [4, 8], offset: 16)
        let fromKey = ParameterTensor(key: "attn.2.attention.self.query.A", shape: [4, 8], offset: 16)
        XCTAssertEqual(planned, fromKey)
        XCTAssertEqual(fromKey.name, planned.name)
        XCTAssertEqual(fromKey.layer, 2)
        XCTAssertEqual(fromKey.module, "attention.self.query")
        XCTAssertNil(fromKey.modes)
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        XCTAssertEqual(String(decoding: try encoder.encode(planned), as: UTF8.self),
                       #"{"key":"attn.2.attention.self.query.A","offset":16,"shape":[4,8]}"#)
        let decoded = try JSONDecoder().decode(ParameterTensor.self, from: try encoder.encode(planned))
        XCTAssertEqual(decoded.name, planned.name)
        XCTAssertNil(ParameterTensor(key: "p", shape: [2], offset: 0).name, "a name that is no adapter key")
        var renamed = fromKey
        renamed.key = "tt.core.1"
        XCTAssertEqual(renamed.name, TensorKey(group: "tt", role: .core(1)))
    }
}
