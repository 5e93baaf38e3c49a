@testable import AdaptcCore
import AdaptRuntime

/// Hand-built checked specs, independent of the parser, for planner tests.
enum LoRAFixtures {
    static let here = SourceLocation(path: "test.adapt.yaml", line: 1, column: 1)

    /// Three modules (two share an input size), layers {0, 2}, an override on 2.key.
    static func mixed(shared: Bool = false, scaling: Scaling = .standard) -> CheckedSpec {
        let modules = [
            ModelModule(name: "query", outFeatures: 24, inFeatures: 16, location: here),
            ModelModule(name: "key", outFeatures: 8, inFeatures: 16, location: here),
            ModelModule(name: "mlp.up", outFeatures: 40, inFeatures: 24, location: here),
        ]
        // query and key read one input (model.inputs); mlp.up reads another.
        let model = ModelSpec(layers: 3, modules: modules,
                              inputSets: [InputSet(name: "attention", modules: ["query", "key"], locations: [here, here], location: here)],
                              location: here)
        let overrides = shared ? [] : [PairOverride(layer: 2, module: "key", rank: 3, alpha: 5, location: here)]
        let group = AdapterGroup(name: "attn", structure: .lora, layers: [0, 2], modules: ["query", "key", "mlp.up"],
                                 rank: .uniform(4), alpha: 8, scaling: scaling, shared: shared,
                                 overrides: overrides, location: here)
        let resolved = ResolvedGroup(group: group, modules: modules,
                                     modes: [ResolvedMode(name: .layer, size: 2), ResolvedMode(name: .module, size: 3),
                                             ResolvedMode(name: .out, size: 24), ResolvedMode(name: .in, size: 16)],
                                     ranks: .lora(4))
        let spec = AdapterSpec(path: "test.adapt.yaml", version: 1, name: "Mixed", model: model, groups: [group], location: here)
        return CheckedSpec(spec: spec, groups: [resolved])
    }
}
