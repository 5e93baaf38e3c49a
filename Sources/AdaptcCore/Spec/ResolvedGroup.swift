/// A mode of a group's delta tensor after resolution: `order` applied, `out`/`in`
/// expanded to their factors, modes of size 1 dropped (DESIGN §2).
public struct ResolvedMode: Hashable, Sendable, CustomStringConvertible {
    /// `layer`, `module`, `out`/`in` (unfactorised) or `out.K`/`in.K`.
    public var name: ModeName
    public var size: Int

    public init(name: ModeName, size: Int) {
        self.name = name
        self.size = size
    }

    public var description: String { "\(name)=\(size)" }
}

/// The ranks of a group once Check has applied the rules of DESIGN §2.
public enum ResolvedRanks: Hashable, Sendable {
    /// lora: the group's rank (per-pair overrides are looked up with `rank(layer:module:)`).
    case lora(Int)
    /// tensor-train: one rank per bond (modes.count − 1), uniform `rank:` clipped to
    /// min(∏ sizes left, ∏ sizes right).
    case tensorTrain(bonds: [Int])
    /// cp: R.
    case cp(Int)
    /// tucker: one entry per resolved mode, nil where the rank is `full` (no factor).
    case tucker([Int?])
}

/// A (layer, module) pair a group covers.
public struct Pair: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var layer: Int
    public var module: String
    public init(layer: Int, module: String) {
        self.layer = layer
        self.module = module
    }
    public static func < (a: Pair, b: Pair) -> Bool { (a.layer, a.module) < (b.layer, b.module) }
    /// The `LAYER.MODULE` key of eval/materialize/calibration files.
    public var key: String { "\(layer).\(module)" }
    public var description: String { key }
}

/// A group after Check: every rule of DESIGN §5 holds, shapes are known.
public struct ResolvedGroup: Sendable {
    public var group: AdapterGroup
    /// The group's modules in group order, with their shapes.
    public var modules: [ModelModule]
    /// The delta tensor's modes in resolved order (size-1 modes dropped). Empty
    /// for lora, which keeps one [out, in] pair of factors per pair, not a stacked tensor.
    public var modes: [ResolvedMode]
    public var ranks: ResolvedRanks
    /// The group's tasks (`tasks:` resolved against `model.tasks`, in model
    /// order for `all`, as listed otherwise); empty for a group without tasks.
    public var tasks: [String] = []

    public init(group: AdapterGroup, modules: [ModelModule], modes: [ResolvedMode], ranks: ResolvedRanks) {
        self.group = group
        self.modules = modules
        self.modes = modes
        self.ranks = ranks
    }

    public var name: String { group.name }
    public var structure: Structure { group.structure }
    public var layers: [Int] { group.layers }

    /// Every covered pair, layer-major, modules in group order.
    public var pairs: [Pair] {
        group.layers.flatMap { l in modules.map { Pair(layer: l, module: $0.name) } }
    }

    public func module(named name: String) -> ModelModule? { modules.first { $0.name == name } }

    /// Whether a stored tensor that carries `modes` learns (DESIGN §3, `train:`):
    /// always without `train:`, else when it carries a mode `train` names
    /// (`out`/`in` stand for all their factors, as in `order`).
    public func isTrainable(carrying modes: [ModeName]) -> Bool {
        guard let train = group.train else { return true }
        return modes.contains { carried in
            train.contains { $0.kind == carried.kind && ($0.factor == nil || $0.factor == carried.factor) }
        }
    }

    /// `r` of the scale formula: the lora rank, the largest bond rank after
    /// clipping, CP's R, or the largest non-full Tucker rank (DESIGN §2).
    public var effectiveRank: Int {
        switch ranks {
        case .lora(let r): return r
        case .tensorTrain(let bonds): return bonds.max() ?? 1
        case .cp(let r): return r
        case .tucker(let rs): return rs.compactMap { $0 }.max() ?? 1
        }
    }

    private func override(_ layer: Int, _ module: String) -> PairOverride? {
        group.overrides.first { $0.layer == layer && $0.module == module }
    }

    /// The lora rank of one pair (override or group rank).
    public func rank(layer: Int, module: String) -> Int {
        override(layer, module)?.rank ?? effectiveRank
    }

    public func alpha(layer: Int, module: String) -> Double? {
        override(layer, module)?.alpha ?? group.alpha
    }

    /// s = alpha / r (standard) or alpha / √r (rslora); 1 without alpha.
    public func scale(layer: Int, module: String) -> Double {
        ResolvedGroup.scale(alpha: alpha(layer: layer, module: module),
                            rank: rank(layer: layer, module: module), scaling: group.scaling)
    }

    public static func scale(alpha: Double?, rank: Int, scaling: Scaling) -> Double {
        guard let alpha else { return 1 }
        switch scaling {
        case .standard: return alpha / Double(rank)
        case .rslora: return alpha / Double(rank).squareRoot()
        }
    }
}

/// A spec that passed Check: what Plan, Emit and the commands work from.
public struct CheckedSpec: Sendable {
    public var spec: AdapterSpec
    public var groups: [ResolvedGroup]
    /// Warnings and notes Check produced (no errors).
    public var diagnostics: [Diagnostic]

    public init(spec: AdapterSpec, groups: [ResolvedGroup], diagnostics: [Diagnostic] = []) {
        self.spec = spec
        self.groups = groups
        self.diagnostics = diagnostics
    }

    /// The group covering a pair, if any.
    public func group(covering pair: Pair) -> ResolvedGroup? {
        groups.first { $0.group.layers.contains(pair.layer) && $0.group.modules.contains(pair.module) }
    }
}
