import AdaptRuntime

/// What `adaptc prune` decided for one group: the figures for the report and
/// the edits for the spec (DESIGN §4). Weights live in `PruneResult.weights`.
public struct GroupPruning {
    public var name: String
    public var structure: Structure
    /// False for groups the pruner leaves alone (none since every structure is pruned).
    public var pruned: Bool
    /// Each layer's share of the group's output energy, ascending by layer.
    public var layerShares: [(layer: Int, share: Double)]
    public var keptLayers: [Int]
    public var droppedLayers: [Int]
    /// The new `shared: true` group of the dropped layers, if any.
    public var sharedGroupName: String?
    /// A shared input group's new rank (nil: unchanged or not shared).
    public var sharedRank: Int?
    public var pairs: [PairPruning]
    /// Tensor-train groups: each bond's data-weighted spectrum and cut (empty otherwise).
    public var bonds: [BondPruning] = []
    /// Tensor-train groups: the bond ranks the input spec gave (before any layer cut).
    public var originalBondRanks: [Int] = []
    /// Tucker groups: each mode's data-weighted spectrum and cut; cp groups: one
    /// entry, the components' leave-one-out losses (empty otherwise).
    public var modes: [ModePruning] = []
    /// Tucker and cp groups: the ranks the pruned spec's group must resolve to.
    public var expectedRanks: ResolvedRanks?
    /// Tucker and cp groups: whether a rank changed, so the spec's ranks are rewritten.
    public var ranksChanged = false

    public init(name: String, structure: Structure, pruned: Bool, layerShares: [(layer: Int, share: Double)], keptLayers: [Int],
                droppedLayers: [Int], sharedGroupName: String?, sharedRank: Int?, pairs: [PairPruning]) {
        self.name = name
        self.structure = structure
        self.pruned = pruned
        self.layerShares = layerShares
        self.keptLayers = keptLayers
        self.droppedLayers = droppedLayers
        self.sharedGroupName = sharedGroupName
        self.sharedRank = sharedRank
        self.pairs = pairs
    }

    public var totalEnergy: Double { pairs.reduce(0) { $0 + $1.importance } }
    public var lostEnergy: Double { pairs.reduce(0) { $0 + $1.lostEnergy } }
    /// Fraction of the group's calibration output energy kept: 1 − ‖error‖²/‖output‖².
    public var energyKept: Double { totalEnergy > 0 ? 1 - lostEnergy / totalEnergy : 1 }
}

/// One bond of a tensor-train group (data-weighted TT-rounding, DESIGN §4).
public struct BondPruning {
    /// The modes on either side, for the report: "layer module | out in".
    public var left: [String]
    public var right: [String]
    public var rankBefore: Int
    public var rankAfter: Int
    /// σ_j² of the bond's data-weighted SVD: each component's output energy on the calibration rows.
    public var energies: [Double]
    /// True when the weighted modes (layer, module, in) all lie on one side, so `energies` are exact.
    public var exactWeighting: Bool
    /// What this bond's cut lost on the calibration rows (Σ dropped energies where exact, measured otherwise).
    public var lostEnergy: Double
}

/// One mode of a Tucker group, or a cp group's components (DESIGN §4).
public struct ModePruning {
    /// The mode as written in `ranks:` (`out.0`, `layer`, …); `components` for cp.
    public var name: String
    /// nil for a full mode (it stays full).
    public var rankBefore: Int?
    public var rankAfter: Int?
    /// Tucker: the mode's data-weighted spectrum, descending. cp: per input
    /// component, the calibration output energy lost by leaving it out.
    public var energies: [Double]
    /// Indices into `energies` that were kept.
    public var kept: [Int]
    /// True where `energies` are exact output energies of orthogonal components.
    public var exactWeighting: Bool
    /// What this mode's cut lost on the calibration rows.
    public var lostEnergy: Double
}

/// One pair: its importance, spectrum and what it kept.
public struct PairPruning {
    public var pair: Pair
    public var importance: Double
    public var rankBefore: Int
    /// nil when its layer was dropped (it uses the shared adapter now).
    public var rankAfter: Int?
    public var singularValues: [Double]
    public var componentEnergies: [Double]
    public var keptComponents: [Int]
    public var lostEnergy: Double
    /// Global scope kept none of its components: written as rank 1 with B = 0.
    public var vanished: Bool

    public init(pair: Pair, importance: Double, rankBefore: Int, rankAfter: Int?, singularValues: [Double],
                componentEnergies: [Double], keptComponents: [Int], lostEnergy: Double, vanished: Bool) {
        self.pair = pair
        self.importance = importance
        self.rankBefore = rankBefore
        self.rankAfter = rankAfter
        self.singularValues = singularValues
        self.componentEnergies = componentEnergies
        self.keptComponents = keptComponents
        self.lostEnergy = lostEnergy
        self.vanished = vanished
    }
}

/// Everything `adaptc prune` writes, computed before anything is written.
public struct PruneResult {
    public var settings: PruneSettings
    public var groups: [GroupPruning]
    /// Pruned weights by adaptc key (`GROUP.LAYER.MODULE.A`, …).
    public var weights: [String: [Float]]

    public init(settings: PruneSettings, groups: [GroupPruning], weights: [String: [Float]]) {
        self.settings = settings
        self.groups = groups
        self.weights = weights
    }

    public var totalEnergy: Double { groups.reduce(0) { $0 + $1.totalEnergy } }
    public var lostEnergy: Double { groups.reduce(0) { $0 + $1.lostEnergy } }
    public var energyKept: Double { totalEnergy > 0 ? 1 - lostEnergy / totalEnergy : 1 }
}
