import AdaptRuntime

/// The two ways adaptc names a (layer, module) pair in a file (DESIGN §5):
/// `model.weights.key`, a template such as
/// `encoder.layer.{layer}.attention.self.{module}.weight` that names the base
/// weight in a checkpoint, and `LAYER.MODULE` (`3.query`), the key of `eval`,
/// `materialize` and adapter files. Every command that reads or writes either
/// goes through here, so the rules live in one place.
public struct WeightKeyTemplate: Sendable, Equatable {
    public let template: String
    /// `model.weights.layout`: `[out, in]` or GPT-2's transposed `[in, out]`.
    public let layout: WeightLayout

    public init(_ template: String, layout: WeightLayout = .outIn) {
        self.template = template
        self.layout = layout
    }

    /// The spec's template; a command that needs the base weights fails with a
    /// hint when the spec has none.
    public init(_ checked: CheckedSpec, for command: String) throws {
        guard let template = checked.spec.model.weightsKey else {
            throw UserError("\(checked.spec.path): \(command) needs model.weights.key "
                            + "(e.g. \"encoder.layer.{layer}.attention.self.{module}.weight\")")
        }
        self.template = template
        self.layout = checked.spec.model.weightsLayout
    }

    /// `true` when the checkpoint stores weights `[in, out]` (PEFT's `fan_in_fan_out`).
    public var isTransposed: Bool { layout == .inOut }

    /// The stored shape of a pair's base weight.
    public func storedShape(_ pair: PairPlan) -> [Int] {
        isTransposed ? [pair.inFeatures, pair.outFeatures] : [pair.outFeatures, pair.inFeatures]
    }

    /// The checkpoint key of one pair's base weight.
    public func key(layer: Int, module: String) -> String {
        template.replacingOccurrences(of: "{layer}", with: String(layer))
            .replacingOccurrences(of: "{module}", with: module)
    }

    public func key(_ pair: PairPlan) -> String { key(layer: pair.layer, module: pair.module) }
}

/// `LAYER.MODULE` keys: the layer is a decimal integer without sign or leading
/// zeros, the module is the rest (module names may contain dots).
public enum PairKey {
    public static func key(layer: Int, module: String) -> String { "\(layer).\(module)" }

    /// `nil` unless `key` is `LAYER.MODULE` as above.
    public static func parse(_ key: String) -> (layer: Int, module: String)? {
        let parts = key.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 2, !parts[1].isEmpty, let layer = Int(parts[0]), layer >= 0, String(layer) == parts[0] else {
            return nil
        }
        return (layer, parts[1])
    }

    /// The plan's pair a key in `file` names, or an error naming file and tensor.
    public static func pair(_ key: String, in plan: Plan, file: String) throws -> PairPlan {
        guard let (layer, module) = parse(key) else {
            throw UserError("\(file): tensor \"\(key)\": keys are LAYER.MODULE, e.g. 3.query")
        }
        guard let pair = plan.pair(layer: layer, module: module) else {
            throw UserError("\(file): tensor \"\(key)\": the spec has no adapter for layer \(layer) module \"\(module)\"")
        }
        return pair
    }
}
