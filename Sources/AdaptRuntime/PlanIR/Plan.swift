/// The Plan IR: what `adaptc plan` prints, what the interpreter executes and
/// what the emitter turns into straight-line Swift. One plan per spec.
///
/// A plan is a contraction schedule over named matrices: each operation
/// (forward, backward, materialize, prepare, finishBackward) is a `Program`, a
/// list of stages run in order whose contractions are independent of one
/// another within a stage (so they may run in parallel).
public struct Plan: Hashable, Sendable, Codable {
    public var specName: String
    /// Every stored parameter, in buffer order; gradients use the same offsets.
    public var parameters: [ParameterTensor]
    public var parameterCount: Int
    public var groups: [GroupPlan]
    /// Scratch floats the largest call needs; intermediates never overlap.
    public var workspace: Extent
    /// Floats of prepared state (what `prepare` computes and forward reads).
    public var preparedCount: Int
    /// Floats of prepared state that get a gradient: the first ones. The rest
    /// (`PanelPacking`'s copies, laid out after every group's own state) only
    /// re-arrange values that have their gradient elsewhere.
    public var preparedGradientCount: Int
    /// `model.tasks` when a group has tasks (DESIGN §2 "Tasks"): a call's task
    /// id indexes this list. nil for a plan without tasks (and left out of its encoding).
    public var modelTasks: [String]?

    /// The model's tasks (empty without).
    public var tasks: [String] { modelTasks ?? [] }

    public init(specName: String, parameters: [ParameterTensor], groups: [GroupPlan], workspace: Extent,
                preparedCount: Int = 0, preparedGradientCount: Int? = nil) {
        self.specName = specName
        self.parameters = parameters
        self.parameterCount = parameters.last.map { $0.offset + $0.count } ?? 0
        self.groups = groups
        self.workspace = workspace
        self.preparedCount = preparedCount
        self.preparedGradientCount = preparedGradientCount ?? preparedCount
    }

    /// True when forward reads state that `prepare` must compute first.
    public var needsPrepare: Bool { groups.contains { !$0.prepare.isEmpty } }

    public func parameter(_ key: String) -> ParameterTensor? { parameters.first { $0.key == key } }

    public func parameter(_ name: TensorKey) -> ParameterTensor? { parameters.first { $0.name == name } }

    /// The tensors of one group, in buffer order.
    public func parameters(of group: String) -> [ParameterTensor] { parameters.filter { $0.name?.group == group } }

    /// Every pair of every group, in plan order.
    public var pairs: [PairPlan] { groups.flatMap(\.pairs) }

    public func pair(layer: Int, module: String) -> PairPlan? {
        for group in groups { if let p = group.pairs.first(where: { $0.layer == layer && $0.module == module }) { return p } }
        return nil
    }
}

/// A named tensor stored in the parameter buffer: its safetensors key and, typed,
/// which group it belongs to and what it is there (`name`, DESIGN §5); its shape
/// and offset. `name` is read from `key` (one file renders and parses keys,
/// `TensorKey`), so a layout written as key strings — generated code, a plan
/// file — has it too.
public struct ParameterTensor: Hashable, Sendable, Codable {
    public var key: String { didSet { name = TensorKey(parsing: key) } }
    /// The key, typed; nil for a name that is no adapter key.
    public private(set) var name: TensorKey?
    public var shape: [Int]
    public var offset: Int
    /// False for a tensor the spec's `train:` leaves frozen (DESIGN §3): backward
    /// computes no gradient for it (its gradient stays zero) and the optimizers
    /// leave it unchanged. True unless `train:` says otherwise.
    public var trainable: Bool
    /// The mode each axis stands for where the planner knows it (nil for an axis
    /// of extent 1 that stands for none, such as a tensor train's end ranks);
    /// nil where the layout came from key strings. What the planner knows about
    /// the tensor, not where it is stored: `==`, `hash` and the encoding leave it out.
    public var modes: [String?]?

    public init(key: String, shape: [Int], offset: Int, trainable: Bool = true) {
        self.key = key
        self.name = TensorKey(parsing: key)
        self.shape = shape
        self.offset = offset
        self.trainable = trainable
    }

    /// A tensor the planner names: its key is `name` rendered.
    public init(_ name: TensorKey, modes: [String?], shape: [Int], offset: Int, trainable: Bool = true) {
        precondition(modes.count == shape.count, "internal error: \(name) has \(shape.count) axes and \(modes.count) modes")
        self.init(key: name.description, shape: shape, offset: offset, trainable: trainable)
        self.modes = modes
    }

    public var count: Int { shape.reduce(1, *) }

    /// A copy of this tensor's values in a parameter buffer laid out by its plan.
    public func values(in parameters: UnsafeMutableBufferPointer<Float>) -> [Float] {
        Array(parameters[offset..<(offset + count)])
    }

    /// The layer of a per-layer lora tensor or magnitude (`TensorKey.layer`).
    public var layer: Int? { name?.layer }
    /// The module of a lora tensor or magnitude (`TensorKey.module`).
    public var module: String? { name?.module }

    public static func == (a: ParameterTensor, b: ParameterTensor) -> Bool {
        a.key == b.key && a.shape == b.shape && a.offset == b.offset && a.trainable == b.trainable
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(key)
        hasher.combine(shape)
        hasher.combine(offset)
        hasher.combine(trainable)
    }

    private enum CodingKeys: String, CodingKey { case key, shape, offset, trainable }

    // `trainable` is written only when false, so plans without `train:` encode as before.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(key: try c.decode(String.self, forKey: .key), shape: try c.decode([Int].self, forKey: .shape),
                  offset: try c.decode(Int.self, forKey: .offset),
                  trainable: try c.decodeIfPresent(Bool.self, forKey: .trainable) ?? true)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(key, forKey: .key)
        try c.encode(shape, forKey: .shape)
        try c.encode(offset, forKey: .offset)
        if !trainable { try c.encode(trainable, forKey: .trainable) }
    }
}

/// Stages run in order; the contractions inside one stage are independent.
public struct Program: Hashable, Sendable, Codable {
    public var stages: [[Contraction]]
    /// The first `rowLocalStages` stages are row-local (`Contraction.isRowLocal`):
    /// they may run on blocks of token rows side by side (`RowBlocks.each`),
    /// each block writing its own rows of every result, intermediates included;
    /// the stages after them run on all rows at once. Backward puts its
    /// token-side work there, and its sums over rows (the parameter gradients)
    /// after, so one fork covers what used to be a stage and a wait each.
    public var rowLocalStages: Int

    public init(_ stages: [[Contraction]] = []) {
        self.stages = stages.filter { !$0.isEmpty }
        rowLocalStages = 0
    }

    /// Row-local stages, then the rest.
    public init(rowLocal: [[Contraction]], then rest: [[Contraction]]) {
        let rowLocal = rowLocal.filter { !$0.isEmpty }
        stages = rowLocal + rest.filter { !$0.isEmpty }
        rowLocalStages = rowLocal.count
    }

    public var contractions: [Contraction] { stages.flatMap { $0 } }
    public var isEmpty: Bool { stages.isEmpty }

    /// The program of task `task`: every view with its `taskStride` applied
    /// (what the interpreter and generated code run for it).
    public func forTask(_ task: Int) -> Program {
        var program = self
        program.stages = stages.map { $0.map { $0.forTask(task) } }
        return program
    }

    /// The program with `taskStride` set on every view `stride` gives one for
    /// (a plan pass for groups with tasks).
    public func indexingTasks(_ stride: (TensorView) -> Int?) -> Program {
        var program = self
        program.stages = stages.map { stage in
            stage.map { c in
                var c = c
                func index(_ view: inout TensorView) { if let s = stride(view) { view.taskStride = s } }
                index(&c.output)
                index(&c.a)
                if var b = c.b { index(&b); c.b = b }
                return c
            }
        }
        return program
    }

    /// True when some view moves with the task.
    public var readsTask: Bool {
        contractions.contains { c in ([c.output, c.a] + (c.b.map { [$0] } ?? [])).contains { $0.taskStride != 0 } }
    }

    /// Multiply-adds ×2 of the whole program, as a function of n.
    public var flops: Extent { contractions.reduce(Extent(0)) { $0 + $1.flops } }
}

public struct GroupPlan: Hashable, Sendable, Codable {
    public var name: String
    public var structure: String
    public var pairs: [PairPlan]
    /// Forward of several modules of one layer that read the same `x`, fused.
    public var layerForwards: [LayerForward]
    /// Their VJPs: `dx += Σ_m dy_m·ΔW[layer, m]` and every parameter gradient, with
    /// the input-side work shared as in the forward (output slot i holds `dy` of `modules[i]`).
    public var layerBackwards: [LayerForward] = []
    /// Token-independent work, once per weight update: the weight-side
    /// subnetworks the path optimizer hoisted out of forward, then the panel
    /// copies of forward's last factor (`PanelPacking`; all a lora group has).
    public var prepare: Program
    /// The VJP of prepare: pushes prepared gradients back to stored parameters.
    public var finishBackward: Program
    /// The chosen path in words, for `adaptc plan`.
    public var path: [String]
    /// The chosen path as data (`adaptc plan --json`), in contraction order.
    public var steps: [PathStep] = []
    /// Modes of the group's delta tensor with their sizes, and its ranks, as
    /// the planner used them (empty for lora).
    public var modes: [String: Int] = [:]
    public var modeOrder: [String] = []
    public var ranks: [Int] = []
    /// The search that chose the path: `optimal` or `greedy` (past the exact limit).
    public var optimizer: String = "optimal"
    /// The group's tasks, a subset of the model's in the group's order: the
    /// task mode's index is a position here. Each program's views are those
    /// of the first task, their `taskStride` moves them to the others. nil for
    /// a group without tasks (and left out of its encoding).
    public var groupTasks: [String]?

    /// The group's tasks (empty without).
    public var tasks: [String] { groupTasks ?? [] }

    /// The position of the model's task `name` in this group's task mode;
    /// nil when the group has no slice for it (its ΔW for that task is zero).
    public func slot(ofTask name: String) -> Int? { groupTasks?.firstIndex(of: name) }

    /// The group with `taskStride` set on every view of every program that
    /// `stride` gives one for (`Program.indexingTasks`): a plan pass for groups with tasks.
    public func indexingTasks(_ stride: (TensorView) -> Int?) -> GroupPlan {
        var group = self
        for p in pairs.indices {
            group.pairs[p].forward = pairs[p].forward.indexingTasks(stride)
            group.pairs[p].backward = pairs[p].backward.indexingTasks(stride)
            group.pairs[p].materialize = pairs[p].materialize.indexingTasks(stride)
        }
        for f in layerForwards.indices { group.layerForwards[f].program = layerForwards[f].program.indexingTasks(stride) }
        for f in layerBackwards.indices { group.layerBackwards[f].program = layerBackwards[f].program.indexingTasks(stride) }
        group.prepare = prepare.indexingTasks(stride)
        group.finishBackward = finishBackward.indexingTasks(stride)
        return group
    }

    public init(name: String, structure: String, pairs: [PairPlan], layerForwards: [LayerForward],
                prepare: Program = Program(), finishBackward: Program = Program(), path: [String]) {
        self.name = name
        self.structure = structure
        self.pairs = pairs
        self.layerForwards = layerForwards
        self.prepare = prepare
        self.finishBackward = finishBackward
        self.path = path
    }
}

/// One pairwise contraction of a group's path, as data; its description is
/// the step in words, e.g. `x[n,i]·A[r,i] → z[n,r]`.
public struct PathStep: Hashable, Sendable, Codable, CustomStringConvertible {
    /// `prepare` (hoisted, once per weight update) or `token` (every call).
    public var phase: String
    public var left: String
    public var leftModes: [String]
    public var right: String
    public var rightModes: [String]
    public var result: String
    public var resultModes: [String]

    public init(phase: String, left: String, leftModes: [String], right: String, rightModes: [String],
                result: String, resultModes: [String]) {
        self.phase = phase
        self.left = left
        self.leftModes = leftModes
        self.right = right
        self.rightModes = rightModes
        self.result = result
        self.resultModes = resultModes
    }

    public var description: String {
        func tensor(_ name: String, _ modes: [String]) -> String { "\(name)[\(modes.joined(separator: ","))]" }
        return "\(tensor(left, leftModes))·\(tensor(right, rightModes)) → \(tensor(result, resultModes))"
    }
}

/// The programs of one (layer, module) pair. Token buffers: `x` [n, in],
/// `y` [n, out], `dy` [n, out], `dx` [n, in]; materialize writes `ΔW` [out, in].
public struct PairPlan: Hashable, Sendable, Codable {
    public var layer: Int
    public var module: String
    public var outFeatures: Int
    public var inFeatures: Int
    /// The adapter's rank for this pair (per-pair overrides included).
    public var rank: Int
    public var scale: Double
    /// `y += x·ΔWᵀ`.
    public var forward: Program
    /// `dx += dy·ΔW`, parameter gradients `+=`.
    public var backward: Program
    /// `ΔW = s·B·A`.
    public var materialize: Program
    /// Set for a pair of a `dora: true` group: its programs are the plain
    /// LoRA's, and DoRA's rescaling needs the base (`DoRAPlan`).
    public var dora: DoRAPlan? = nil

    public init(layer: Int, module: String, outFeatures: Int, inFeatures: Int, rank: Int, scale: Double,
                forward: Program, backward: Program, materialize: Program) {
        self.layer = layer
        self.module = module
        self.outFeatures = outFeatures
        self.inFeatures = inFeatures
        self.rank = rank
        self.scale = scale
        self.forward = forward
        self.backward = backward
        self.materialize = materialize
    }

    public var key: String { "\(layer).\(module)" }
}

/// Forward of `modules` of one layer sharing one input `x`; output slot `i` is
/// `y` of `modules[i]` (`MatrixView.slot`).
public struct LayerForward: Hashable, Sendable, Codable {
    public var layer: Int
    public var modules: [String]
    public var program: Program

    public init(layer: Int, modules: [String], program: Program) {
        self.layer = layer
        self.modules = modules
        self.program = program
    }
}

extension Program {
    /// True when the program maps token rows independently — no step sums over
    /// the token mode, and the caller's token buffers are read and written as
    /// rows at fixed offsets with fixed strides — so it may run on blocks of
    /// rows, each block the whole program on its rows (`RowBlocks`). Forward
    /// programs are; backward ones, which sum parameter gradients over rows, are not.
    public var mapsRowsIndependently: Bool {
        let tokenBuffers: Set<Storage> = [.input, .output, .inputGradient, .outputGradient]
        for c in contractions {
            for view in [c.output, c.a] + (c.b.map { [$0] } ?? []) where tokenBuffers.contains(view.storage) {
                guard view.offset.isFixed, view.strides.allSatisfy(\.isFixed),
                      view.extents.filter({ !$0.isFixed }) == [.tokens] else { return false }
            }
            switch c.lowered {
            case .gemm(let g)?:
                if !g.k.isFixed || g.loops.contains(where: { $0.reduces && !$0.extent.isFixed }) { return false }
            case .elementwise?:
                break
            case nil:
                return false
            }
        }
        return true
    }

    /// Flops per token of the row-local stages (the work `RowBlocks.each` divides).
    public var rowLocalFlops: Extent {
        stages.prefix(rowLocalStages).joined().reduce(Extent(0)) { $0 + $1.flops }
    }

    /// Workspace floats the program touches (the largest end of its workspace views).
    public var workspaceExtent: Extent {
        contractions.flatMap { [$0.output, $0.a] + ($0.b.map { [$0] } ?? []) }
            .filter { $0.storage == .workspace }
            .reduce(Extent(0)) { .atLeast($0, $1.end) }
    }
}

extension Contraction {
    /// True when the contraction may run on a block of token rows with its
    /// views' offsets and strides those of all n rows, each row's result
    /// depending on that row alone (`Program.rowLocalStages`): its output has
    /// the token mode, every view has it at most once (extent n, a fixed
    /// stride) and no other size or stride that grows with n, and nothing sums
    /// over it. A block then shifts each view by its `tokenRowStride` per row.
    public var isRowLocal: Bool { hasRowLocalViews && isRowLocal(lowered: lowered) }

    /// The views' half of `isRowLocal`, cheap to check before lowering the step.
    public var hasRowLocalViews: Bool {
        guard output.extents.contains(.tokens) else { return false }
        for view in [output, a] + (b.map { [$0] } ?? []) {
            guard view.strides.allSatisfy(\.isFixed), view.extents.filter({ !$0.isFixed }).allSatisfy({ $0 == .tokens }),
                  view.extents.filter({ !$0.isFixed }).count <= 1 else { return false }
        }
        return true
    }

    /// `isRowLocal` given the step's `lowered` (which takes a while to work out; callers that have it pass it).
    public func isRowLocal(lowered: Lowered?) -> Bool {
        guard hasRowLocalViews else { return false }
        switch lowered {
        case .gemm(let g)?: return g.k.isFixed && g.loops.allSatisfy { $0.extent.isFixed }
        case .elementwise?: return true
        case nil: return false
        }
    }
}

extension TensorView {
    /// How far one token row moves this view: the stride of its token mode
    /// (0 without one). Defined for views of row-local contractions.
    public var tokenRowStride: Int {
        guard let k = extents.firstIndex(of: .tokens) else { return 0 }
        return strides[k].constant
    }
}
