/// The adapter spec (`*.adapt.yaml`, DESIGN §5) as parsed: every value the file
/// gave, with the location of each key for later diagnostics. Parse builds it,
/// Check validates it and resolves each group (ResolvedGroup), Plan consumes the
/// resolved form.
public struct AdapterSpec: Sendable {
    /// The path as given on the command line (diagnostics name it like that).
    public var path: String
    public var version: Int
    public var name: String
    public var model: ModelSpec
    public var groups: [AdapterGroup]
    public var prune: PruneSettings
    public var codegen: CodegenSettings
    /// Location of the document's root mapping.
    public var location: SourceLocation
    /// Location of each top-level key (`adaptc`, `name`, `model`, …), for diagnostics.
    public var keyLocations: [String: SourceLocation]

    public init(path: String, version: Int, name: String, model: ModelSpec, groups: [AdapterGroup],
                prune: PruneSettings = .init(), codegen: CodegenSettings = .init(),
                location: SourceLocation, keyLocations: [String: SourceLocation] = [:]) {
        self.path = path
        self.version = version
        self.name = name
        self.model = model
        self.groups = groups
        self.prune = prune
        self.codegen = codegen
        self.location = location
        self.keyLocations = keyLocations
    }

    /// The Swift type the generated file declares: `NAME` + `Adapter`.
    public var adapterTypeName: String { name + "Adapter" }
}

/// One targeted linear map: weight `[out, in]` (PyTorch layout).
public struct ModelModule: Hashable, Sendable {
    /// An identifier or a dotted path of identifiers (`attention.self.query`).
    public var name: String
    public var outFeatures: Int
    public var inFeatures: Int
    public var location: SourceLocation

    public init(name: String, outFeatures: Int, inFeatures: Int, location: SourceLocation) {
        self.name = name
        self.outFeatures = outFeatures
        self.inFeatures = inFeatures
        self.location = location
    }

    /// The generated enum case: dotted path in lowerCamelCase (`attentionSelfQuery`).
    public var caseName: String { ModelModule.caseName(for: name) }

    public static func caseName(for dottedPath: String) -> String {
        let parts = dottedPath.split(separator: ".").map(String.init)
        guard let first = parts.first else { return dottedPath }
        return first + parts.dropFirst().map { $0.prefix(1).uppercased() + $0.dropFirst() }.joined()
    }
}

/// One entry of `model.inputs`: modules of a layer that read the same `x`.
public struct InputSet: Hashable, Sendable {
    public var name: String
    public var modules: [String]
    /// Where each listed module name stands, for diagnostics.
    public var locations: [SourceLocation]
    public var location: SourceLocation

    public init(name: String, modules: [String], locations: [SourceLocation], location: SourceLocation) {
        self.name = name
        self.modules = modules
        self.locations = locations
        self.location = location
    }
}

/// How a base checkpoint stores a module's weight. Shapes in the spec, ΔW and
/// the adapter's factors are always `[out, in]`; `in_out` is the transposed
/// storage of GPT-2's `Conv1D` (PEFT's `fan_in_fan_out`), which merge, the
/// residual and the principal inits transpose to and from.
public enum WeightLayout: String, CaseIterable, Sendable {
    case outIn = "out_in"
    case inOut = "in_out"
}

public struct ModelSpec: Sendable {
    public var layers: Int
    /// In spec order.
    public var modules: [ModelModule]
    /// `weights.key`: base checkpoint key template with `{layer}` and `{module}`.
    public var weightsKey: String?
    /// `weights.layout`: how the base checkpoint stores each targeted weight.
    public var weightsLayout: WeightLayout
    /// `inputs`: named sets of modules that read one and the same input (q/k/v).
    public var inputSets: [InputSet]
    /// `tasks`: the task names (DESIGN §2, "Tasks"), in spec order; empty when
    /// the model names none. Element locations are `model.tasks[i]`.
    public var tasks: [String] = []
    public var location: SourceLocation

    public init(layers: Int, modules: [ModelModule], weightsKey: String? = nil, weightsLayout: WeightLayout = .outIn,
                inputSets: [InputSet] = [], location: SourceLocation) {
        self.layers = layers
        self.modules = modules
        self.weightsKey = weightsKey
        self.weightsLayout = weightsLayout
        self.inputSets = inputSets
        self.location = location
    }

    public func module(named name: String) -> ModelModule? { modules.first { $0.name == name } }
}

public enum Structure: String, CaseIterable, Sendable {
    case lora
    case tensorTrain = "tensor-train"
    case cp
    case tucker

    /// tensor-train, cp and tucker stack modules in one `module` mode (DESIGN §2).
    public var stacksModules: Bool { self != .lora }
}

public enum Scaling: String, CaseIterable, Sendable {
    case standard, rslora
}

/// A mode of a group's delta tensor as written in `order:` or `ranks:`.
/// `out`/`in` without an index stand for all their factors in sequence.
public struct ModeName: Hashable, Comparable, Sendable, CustomStringConvertible {
    public enum Kind: Int, Sendable, Comparable {
        case layer, module, out, `in`
        /// The task mode of a group with `tasks:` (size T). Last, so the order of the
        /// other kinds (and everything sorted by it) is what it was before tasks.
        case task
        public static func < (a: Kind, b: Kind) -> Bool { a.rawValue < b.rawValue }
    }
    public var kind: Kind
    /// Factor index for `out.K` / `in.K`; nil for `layer`, `module` and whole `out`/`in`.
    public var factor: Int?

    public init(_ kind: Kind, factor: Int? = nil) {
        self.kind = kind
        self.factor = factor
    }

    public static let layer = ModeName(.layer)
    public static let module = ModeName(.module)
    public static let out = ModeName(.out)
    public static let `in` = ModeName(.in)
    public static let task = ModeName(.task)

    public static func < (a: ModeName, b: ModeName) -> Bool { (a.kind, a.factor ?? -1) < (b.kind, b.factor ?? -1) }

    public var description: String {
        let base: String
        switch kind {
        case .layer: base = "layer"
        case .module: base = "module"
        case .out: base = "out"
        case .in: base = "in"
        case .task: base = "task"
        }
        return factor.map { "\(base).\($0)" } ?? base
    }

    /// Parses `layer`, `module`, `out`, `in`, `out.K`, `in.K`, `task`.
    public init?(parsing text: String) {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 1 || parts.count == 2 else { return nil }
        switch parts[0] {
        case "layer": kind = .layer
        case "module": kind = .module
        case "out": kind = .out
        case "in": kind = .in
        case "task": kind = .task
        default: return nil
        }
        if parts.count == 2 {
            guard kind == .out || kind == .in, let k = Int(parts[1]), k >= 0, String(k) == parts[1] else { return nil }
            factor = k
        } else {
            factor = nil
        }
    }
}

public enum TuckerRank: Hashable, Sendable, CustomStringConvertible {
    case full
    case rank(Int)
    public var description: String {
        switch self {
        case .full: return "full"
        case .rank(let r): return String(r)
        }
    }
}

/// `rank:` / `ranks:` as written.
public enum RankSpec: Hashable, Sendable {
    /// `rank: R` — lora rank, uniform TT bond rank (clipped), CP's R, Tucker's R for every mode.
    case uniform(Int)
    /// `ranks: [r1, …]` — tensor-train, one per bond (N − 1 of them).
    case bonds([Int])
    /// `ranks: {layer: full, out: 16, in: 16}` — tucker, keyed by mode name.
    case perMode([(ModeName, TuckerRank)])

    public static func == (a: RankSpec, b: RankSpec) -> Bool {
        switch (a, b) {
        case (.uniform(let x), .uniform(let y)): return x == y
        case (.bonds(let x), .bonds(let y)): return x == y
        case (.perMode(let x), .perMode(let y)):
            return x.count == y.count && zip(x, y).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        default: return false
        }
    }

    public func hash(into hasher: inout Hasher) {
        switch self {
        case .uniform(let r): hasher.combine(0); hasher.combine(r)
        case .bonds(let rs): hasher.combine(1); hasher.combine(rs)
        case .perMode(let ms): hasher.combine(2); for (m, r) in ms { hasher.combine(m); hasher.combine(r) }
        }
    }
}

public enum InitMethod: String, CaseIterable, Sendable {
    case zero, gaussian, pissa, milora
    /// OLoRA: A, B from a QR of W (orthonormal factors); lora, not shared.
    case olora
    case ttSVD = "tt-svd"
    case hosvd
    /// Higher-order orthogonal iteration: HOSVD, then `sweeps` of HOOI (tucker).
    case hooi
    case cpALS = "cp-als"
    case recycle
    /// LoftQ: a quantised base Q and factors fitted to W − Q, alternated.
    case loftq
}

/// LoftQ's `quantiser: {bits, group, kind}` as written; `resolved` fills the defaults.
public struct QuantiserSettings: Hashable, Sendable {
    public enum Kind: String, CaseIterable, Sendable { case symmetric, nf4 }
    public var bits: Int?
    public var group: Int?
    public var kind: Kind?

    public init(bits: Int? = nil, group: Int? = nil, kind: Kind? = nil) {
        self.bits = bits
        self.group = group
        self.kind = kind
    }

    /// Defaults: 4 bits, groups of 64 (QLoRA's and PEFT's blocksize), NF4 for
    /// 4 bits (QLoRA) and symmetric for 8 (NF4 is a 4-bit type).
    public var resolved: (bits: Int, group: Int, kind: Kind) {
        let bits = bits ?? 4
        return (bits, group ?? 64, kind ?? (bits == 4 ? .nf4 : .symmetric))
    }
}

public enum SVDAlgorithm: String, CaseIterable, Sendable {
    case exact, randomized
}

public struct InitSettings: Hashable, Sendable {
    public var method: InitMethod
    public var svd: SVDAlgorithm?
    public var seed: UInt64?
    /// Randomized SVD oversampling p and power iterations q (Halko et al.).
    public var oversampling: Int?
    public var powerIterations: Int?
    /// `recycle`: adapter files or PEFT folders, relative to the spec's folder.
    public var from: [String]
    /// `loftq`: the quantiser and the number of alternations (default 5);
    /// `cp-als`: the most ALS sweeps (default 100).
    public var quantiser: QuantiserSettings?
    public var iterations: Int?
    /// `tt-svd`: ε, each bond keeps the smallest rank whose discarded tail is
    /// ≤ ε‖W‖/√(d−1); `cp-als`: stop when the fit changes by less (default 1e-6).
    public var tolerance: Double?
    /// `hooi`: the most HOOI sweeps after the HOSVD start (default 5).
    public var sweeps: Int?
    /// Tensor methods: `true` (default) makes the base `W − ΔW` (PiSSA's way);
    /// `false` keeps the decomposition as a starting subspace with ΔW = 0.
    public var residual: Bool?

    public init(method: InitMethod = .zero, svd: SVDAlgorithm? = nil, seed: UInt64? = nil,
                oversampling: Int? = nil, powerIterations: Int? = nil, from: [String] = [],
                quantiser: QuantiserSettings? = nil, iterations: Int? = nil,
                tolerance: Double? = nil, sweeps: Int? = nil, residual: Bool? = nil) {
        self.method = method
        self.tolerance = tolerance
        self.sweeps = sweeps
        self.residual = residual
        self.quantiser = quantiser
        self.iterations = iterations
        self.svd = svd
        self.seed = seed
        self.oversampling = oversampling
        self.powerIterations = powerIterations
        self.from = from
    }
}

/// A per-pair override (`overrides: {"3.query": {rank: 4, alpha: 8}}`), lora only.
public struct PairOverride: Hashable, Sendable {
    public var layer: Int
    public var module: String
    public var rank: Int?
    public var alpha: Double?
    public var location: SourceLocation

    public init(layer: Int, module: String, rank: Int? = nil, alpha: Double? = nil, location: SourceLocation) {
        self.layer = layer
        self.module = module
        self.rank = rank
        self.alpha = alpha
        self.location = location
    }
}

/// One entry of `adapters:`.
public struct AdapterGroup: Sendable {
    public var name: String
    public var structure: Structure
    /// Layer indices (`all` expanded with model.layers). Parse keeps them as
    /// written so Check can point at a bad one; in a CheckedSpec they are
    /// ascending and unique.
    public var layers: [Int]
    /// Module names in the order the group lists them.
    public var modules: [String]
    /// `factor: {out: [...], in: [...]}`; nil when not factorised.
    public var outFactors: [Int]?
    public var inFactors: [Int]?
    /// `order:` as written (nil: the structure's default).
    public var order: [ModeName]?
    public var rank: RankSpec?
    public var alpha: Double?
    public var scaling: Scaling
    public var shared: Bool
    /// `dora: true` (lora only): DoRA, a magnitude vector per pair and
    /// W' = m ⊙ (W + s·B·A) / ‖W + s·B·A‖_row (DESIGN §5).
    public var dora: Bool
    public var initialization: InitSettings
    public var overrides: [PairOverride]
    public var location: SourceLocation
    /// `tasks:` as written (nil: the group has no task mode, DESIGN §2 "Tasks").
    public var tasks: TaskSelection? = nil
    /// `train:` as written: the modes whose cores or factors learn (nil: all, DESIGN §3).
    public var train: [ModeName]? = nil
    /// Location of each key of the group's mapping (`rank`, `order`, …); nested
    /// keys as dotted paths (`init.method`) and list elements as `KEY[i]`
    /// (`layers[2]`) — the conventions are listed on SpecParser.
    public var keyLocations: [String: SourceLocation]

    public init(name: String, structure: Structure, layers: [Int], modules: [String],
                outFactors: [Int]? = nil, inFactors: [Int]? = nil, order: [ModeName]? = nil,
                rank: RankSpec?, alpha: Double? = nil, scaling: Scaling = .standard, shared: Bool = false,
                dora: Bool = false, initialization: InitSettings = .init(), overrides: [PairOverride] = [],
                location: SourceLocation, keyLocations: [String: SourceLocation] = [:]) {
        self.name = name
        self.structure = structure
        self.layers = layers
        self.modules = modules
        self.outFactors = outFactors
        self.inFactors = inFactors
        self.order = order
        self.rank = rank
        self.alpha = alpha
        self.scaling = scaling
        self.shared = shared
        self.dora = dora
        self.initialization = initialization
        self.overrides = overrides
        self.location = location
        self.keyLocations = keyLocations
    }

    /// Where a key of this group was written, or the group itself.
    public func location(of key: String) -> SourceLocation { keyLocations[key] ?? location }
}

/// A group's `tasks:`: every task of `model.tasks`, or the ones listed
/// (element locations `tasks[i]`). Check resolves it (`ResolvedGroup.tasks`).
public enum TaskSelection: Hashable, Sendable {
    case all
    case listed([String])
}

public enum PruneLevel: String, CaseIterable, Sendable {
    case layer, rank
}

public enum PruneScope: String, CaseIterable, Sendable {
    case pair, global
}

public struct PruneSettings: Hashable, Sendable {
    public var threshold: Double
    public var levels: [PruneLevel]
    public var scope: PruneScope

    public init(threshold: Double = 0.9, levels: [PruneLevel] = [.layer, .rank], scope: PruneScope = .pair) {
        self.threshold = threshold
        self.levels = levels
        self.scope = scope
    }
}

public struct CodegenSettings: Hashable, Sendable {
    public enum Tokens: Hashable, Sendable {
        case dynamic
        case fixed(Int)
    }
    public enum Access: String, Sendable {
        case `public`, `internal`
    }
    public var tokens: Tokens
    public var access: Access

    public init(tokens: Tokens = .dynamic, access: Access = .public) {
        self.tokens = tokens
        self.access = access
    }
}
