/// Executes a Plan directly: what `adaptc eval`, the pruner and the tests use,
/// and the reference the generated code is checked against (both walk the
/// same plan, DESIGN §6).
public final class PlanInterpreter {
    public let plan: Plan
    public let storage: AdapterStorage
    /// Every program of the plan with its steps lowered, once (a call used to
    /// lower each step again): by pair key, by fused layer, by group.
    let pairPrograms: [String: (forward: CompiledProgram, backward: CompiledProgram, materialize: CompiledProgram)]
    let layerForwards: [LayerKey: CompiledProgram]
    let layerBackwards: [LayerKey: CompiledProgram]
    private let prepares: [CompiledProgram]
    private let finishBackwards: [CompiledProgram]
    /// The index in `plan.groups` of each pair's group, by pair key.
    let groupOfPair: [String: Int]
    /// Per group, each model task's slot in its task mode (nil: no slice; all
    /// 0 for a group without tasks, which is the same for every task).
    let taskSlots: [[Int?]]
    /// DoRA pairs' base weights and row norms, by pair key (`PlanInterpreter+DoRA`).
    var doraBases: [String: DoRABase] = [:]

    public init(plan: Plan, threads: Int = 0) {
        self.plan = plan
        storage = AdapterStorage(parameterCount: plan.parameterCount, preparedCount: plan.preparedCount,
                                 preparedGradientCount: plan.preparedGradientCount, threads: threads)
        var pairs: [String: (CompiledProgram, CompiledProgram, CompiledProgram)] = [:]
        for pair in plan.pairs {
            pairs[pair.key] = (CompiledProgram(pair.forward), CompiledProgram(pair.backward), CompiledProgram(pair.materialize))
        }
        pairPrograms = pairs
        groupOfPair = Dictionary(plan.groups.enumerated().flatMap { g, group in group.pairs.map { ($0.key, g) } }) { first, _ in first }
        taskSlots = plan.groups.map { group in plan.tasks.map { group.tasks.isEmpty ? 0 : group.slot(ofTask: $0) } }
        func byLayer(_ fused: [LayerForward]) -> [LayerKey: CompiledProgram] {
            Dictionary(fused.map { (LayerKey(layer: $0.layer, modules: $0.modules), CompiledProgram($0.program)) }) { first, _ in first }
        }
        layerForwards = byLayer(plan.groups.flatMap(\.layerForwards))
        layerBackwards = byLayer(plan.groups.flatMap(\.layerBackwards))
        prepares = plan.groups.map { CompiledProgram($0.prepare) }
        finishBackwards = plan.groups.map { CompiledProgram($0.finishBackward) }
    }

    /// Token-independent work, once per weight update (for lora only the panel
    /// copies of B, `PanelPacking`): must
    /// run after the parameters change; forward, backward and materialize run
    /// it themselves when `storage` says the prepared state is stale.
    public func prepare() {
        for (group, program) in zip(plan.groups, prepares) where !program.isEmpty {
            // Each task's slice (a step that no task moves gives the same values each time).
            for task in 0..<max(1, group.tasks.count) { run(program, rows: 0, Bindings(), task: task) }
        }
        prepareDoRANorms()
        storage.markPrepared()
    }

    func ensurePrepared() {
        if !storage.preparedIsCurrent { prepare() }
    }

    /// `y[n, out] += x[n, in]·ΔW[layer, module]ᵀ`.
    public func forward(layer: Int, module: String, x: UnsafeBufferPointer<Float>, rows n: Int,
                        y: UnsafeMutableBufferPointer<Float>) throws {
        let pair = try self.pair(layer, module)
        try refuseTasks(pair)
        try expect(x.count, n * pair.inFeatures, "x", pair)
        try expect(y.count, n * pair.outFeatures, "y", pair)
        ensurePrepared()
        let norms = try doraNorms(pair)
        runRows(pairPrograms[pair.key]!.forward, rows: n, Bindings(input: [x], output: [y]), inWidth: pair.inFeatures,
                outWidths: [pair.outFeatures])
        if let norms { rescaleDoRA(pair, rows: n, y: y, norms: norms) }
    }

    /// Forward of several modules of `layer` that read the same `x` (q/k/v):
    /// `outputs[i] += x·ΔW[layer, modules[i]]ᵀ`, fused where the plan allows.
    public func forwardLayer(layer: Int, modules: [String], x: UnsafeBufferPointer<Float>, rows n: Int,
                             outputs: [UnsafeMutableBufferPointer<Float>]) throws {
        let pairs = try layerPairs(layer: layer, modules: modules, x: x.count, rows: n,
                                   perModule: outputs.map(\.count), name: "y")
        ensurePrepared()
        let norms = try pairs.map { try doraNorms($0) }
        if let fused = layerForwards[LayerKey(layer: layer, modules: modules)] {
            runRows(fused, rows: n, Bindings(input: [x], output: outputs), inWidth: pairs[0].inFeatures,
                    outWidths: pairs.map(\.outFeatures))
            return
        }
        for ((pair, y), norms) in zip(zip(pairs, outputs), norms) {
            runRows(pairPrograms[pair.key]!.forward, rows: n, Bindings(input: [x], output: [y]), inWidth: pair.inFeatures,
                    outWidths: [pair.outFeatures])
            if let norms { rescaleDoRA(pair, rows: n, y: y, norms: norms) }
        }
    }

    /// VJP: `dx += dy·ΔW`, and the gradients of the pair's parameters accumulate
    /// into `storage.gradients`.
    public func backward(layer: Int, module: String, x: UnsafeBufferPointer<Float>, dy: UnsafeBufferPointer<Float>,
                         rows n: Int, dx: UnsafeMutableBufferPointer<Float>) throws {
        let pair = try self.pair(layer, module)
        try refuseTasks(pair)
        try expect(x.count, n * pair.inFeatures, "x", pair)
        try expect(dy.count, n * pair.outFeatures, "dy", pair)
        try expect(dx.count, n * pair.inFeatures, "dx", pair)
        try refuseDoRA(pair, call: "backward", use: "backward(layer:module:x:baseOutput:dy:rows:dx:)")
        ensurePrepared()
        run(pairPrograms[pair.key]!.backward, rows: n, Bindings(input: [x], inputGradient: [dx], outputGradient: [dy]))
    }

    /// The plain LoRA VJP of one pair with the caller's buffers (DoRA's backward
    /// runs it with its rescaled dy).
    func runBackward(_ pair: PairPlan, x: UnsafeBufferPointer<Float>, dy: UnsafeBufferPointer<Float>, rows n: Int,
                     dx: UnsafeMutableBufferPointer<Float>) {
        ensurePrepared()
        run(pairPrograms[pair.key]!.backward, rows: n, Bindings(input: [x], inputGradient: [dx], outputGradient: [dy]))
    }

    /// The plain LoRA forward of one pair, `y += x·ΔWᵀ` (DoRA's starts with it).
    func forwardPlain(_ pair: PairPlan, x: UnsafeBufferPointer<Float>, rows n: Int, y: UnsafeMutableBufferPointer<Float>) {
        ensurePrepared()
        runRows(pairPrograms[pair.key]!.forward, rows: n, Bindings(input: [x], output: [y]), inWidth: pair.inFeatures,
                outWidths: [pair.outFeatures])
    }

    /// The plain LoRA ΔW = s·B·A of one pair (DoRA's materialize and merge start from it).
    func runMaterialize(_ pair: PairPlan, into delta: UnsafeMutableBufferPointer<Float>) {
        ensurePrepared()
        run(pairPrograms[pair.key]!.materialize, rows: 0, Bindings(delta: delta))
    }

    /// VJP of the fused forward: `dx += Σ_i dys[i]·ΔW[layer, modules[i]]`, parameter
    /// gradients accumulate; shares the input-side work where the plan fused it.
    public func backwardLayer(layer: Int, modules: [String], x: UnsafeBufferPointer<Float>, dys: [UnsafeBufferPointer<Float>],
                              rows n: Int, dx: UnsafeMutableBufferPointer<Float>) throws {
        let pairs = try layerPairs(layer: layer, modules: modules, x: x.count, rows: n,
                                   perModule: dys.map(\.count), name: "dy")
        for pair in pairs { try expect(dx.count, n * pair.inFeatures, "dx", pair) }
        for pair in pairs { try refuseDoRA(pair, call: "backwardLayer", use: "backward(layer:module:x:baseOutput:dy:rows:dx:) per pair") }
        ensurePrepared()
        if let fused = layerBackwards[LayerKey(layer: layer, modules: modules)] {
            run(fused, rows: n, Bindings(input: [x], inputGradient: [dx], outputGradient: dys))
            return
        }
        for (pair, dy) in zip(pairs, dys) {
            run(pairPrograms[pair.key]!.backward, rows: n, Bindings(input: [x], inputGradient: [dx], outputGradient: [dy]))
        }
    }

    /// Pushes gradients of prepared intermediates back to the stored parameters
    /// (nothing for lora, whose panel copies have no gradient), then
    /// clears them for the next round of backward calls.
    public func finishBackward() {
        for (group, program) in zip(plan.groups, finishBackwards) where !program.isEmpty {
            // Steps that no task moves must run once (a sum over tasks would count them T times).
            precondition(group.tasks.isEmpty || program.readsTask,
                         "internal error: finishBackward of \(group.name) has tasks but no step moves with them")
            for task in 0..<(program.readsTask ? max(1, group.tasks.count) : 1) { run(program, rows: 0, Bindings(), task: task) }
        }
        storage.zeroPreparedGradients()
    }

    /// `ΔW[layer, module]` `[out, in]`, scale included.
    public func materialize(layer: Int, module: String, into delta: UnsafeMutableBufferPointer<Float>) throws {
        let pair = try self.pair(layer, module)
        try refuseTasks(pair)
        try expect(delta.count, pair.outFeatures * pair.inFeatures, "ΔW", pair)
        ensurePrepared()
        let norms = try doraNorms(pair)
        run(pairPrograms[pair.key]!.materialize, rows: 0, Bindings(delta: delta))
        if let norms, let base = doraBases[pair.key] {
            base.weight.withUnsafeBufferPointer { mergedChange(pair, delta: delta, weight: $0, norms: norms) }
        }
    }

    /// `W += ΔW` in place (`unmerge`: `W −= ΔW`), W `[out, in]`, or `[in, out]`
    /// with `transposed` (GPT-2's Conv1D, PEFT's `fan_in_fan_out`).
    public func merge(layer: Int, module: String, into weight: UnsafeMutableBufferPointer<Float>, unmerge: Bool = false,
                      transposed: Bool = false) throws {
        let pair = try self.pair(layer, module)
        try refuseTasks(pair)
        try expect(weight.count, pair.outFeatures * pair.inFeatures, "W", pair)
        if pair.dora != nil {
            try mergeDoRA(pair, into: weight, unmerge: unmerge, transposed: transposed)
            return
        }
        var delta = [Float](repeating: 0, count: weight.count)
        try delta.withUnsafeMutableBufferPointer { try materialize(layer: layer, module: module, into: $0) }
        delta.withUnsafeBufferPointer {
            MergeArithmetic.add($0, rows: pair.outFeatures, columns: pair.inFeatures, to: weight,
                                sign: unmerge ? -1 : 1, transposed: transposed)
        }
    }

    // MARK: - Execution

    func pair(_ layer: Int, _ module: String) throws -> PairPlan {
        guard let pair = plan.pair(layer: layer, module: module) else {
            throw AdapterError.unknownPair(spec: plan.specName, layer: layer, module: module)
        }
        return pair
    }

    /// The pairs of a layer-wide call, once `x` and every per-module buffer
    /// (`name`: y or dy, one per module) have the sizes their pair needs.
    func layerPairs(layer: Int, modules: [String], x: Int, rows n: Int, perModule counts: [Int],
                    name: String, allowTasks: Bool = false) throws -> [PairPlan] {
        guard modules.count == counts.count else {
            throw AdapterError.outputCountMismatch(spec: plan.specName, modules: modules.count, outputs: counts.count)
        }
        let pairs = try modules.map { try pair(layer, $0) }
        if !allowTasks { for pair in pairs { try refuseTasks(pair) } }
        for (pair, count) in zip(pairs, counts) {
            try expect(x, n * pair.inFeatures, "x", pair)
            try expect(count, n * pair.outFeatures, name, pair)
        }
        return pairs
    }

    func expect(_ count: Int, _ expected: Int, _ name: String, _ pair: PairPlan) throws {
        if count != expected {
            throw AdapterError.shapeMismatch(spec: plan.specName, argument: "\(name) of \(pair.key)", count: count, expected: expected)
        }
    }

    /// Caller buffers of one call, by storage and slot.
    struct Bindings {
        var input: [UnsafeBufferPointer<Float>] = []
        var output: [UnsafeMutableBufferPointer<Float>] = []
        var inputGradient: [UnsafeMutableBufferPointer<Float>] = []
        var outputGradient: [UnsafeBufferPointer<Float>] = []
        var delta: UnsafeMutableBufferPointer<Float>? = nil
    }

    /// A forward program on blocks of token rows (`RowBlocks`) where it maps rows
    /// independently, as generated code runs it; `inWidth`, `outWidths`: row
    /// widths of x and of each output slot.
    func runRows(_ program: CompiledProgram, rows n: Int, _ bindings: Bindings, inWidth: Int, outWidths: [Int], task: Int = 0) {
        guard let workspace = program.rowBlockWorkspace else {
            run(program, rows: n, bindings, task: task)
            return
        }
        RowBlocks.run(rows: n, rowWork: program.flops.perToken, workspacePerRow: workspace.perToken,
                      workspaceFixed: workspace.constant, storage: storage, threads: storage.threads) { rows, first, w, threads in
            var block = Bindings()
            block.input = bindings.input.map { UnsafeBufferPointer(rebasing: $0[(first * inWidth)...]) }
            block.output = zip(bindings.output, outWidths).map { UnsafeMutableBufferPointer(rebasing: $0.0[(first * $0.1)...]) }
            run(program, rows: rows, block, workspace: w, threads: threads, task: task)
        }
    }

    /// Runs `program` on n token rows: its row-local stages on `RowBlocks.each`
    /// (sizes for the block's rows, offsets and strides those of all n rows,
    /// each view moved to the block's first row), then the rest on all rows.
    /// `task`: the group's task slot the views move to (`TensorView.taskStride`; 0 without tasks).
    func run(_ program: CompiledProgram, rows n: Int, _ bindings: Bindings, workspace given: UnsafeMutablePointer<Float>? = nil,
             threads: Int? = nil, task: Int = 0) {
        let workspace = given ?? storage.workspace(atLeast: plan.workspace.value(tokens: n))
        let threads = threads ?? storage.threads
        func base(_ view: TensorView) -> UnsafeMutablePointer<Float> {
            let start: UnsafeMutablePointer<Float>
            switch view.storage {
            case .parameters: start = storage.parameterBase
            case .gradients: start = storage.gradients.baseAddress!
            case .prepared: start = storage.prepared.baseAddress!
            case .preparedGradients: start = storage.preparedGradients.baseAddress!
            case .workspace: start = workspace
            case .input: start = UnsafeMutablePointer(mutating: bindings.input[view.slot].baseAddress!)
            case .output: start = bindings.output[view.slot].baseAddress!
            case .inputGradient: start = bindings.inputGradient[view.slot].baseAddress!
            case .outputGradient: start = UnsafeMutablePointer(mutating: bindings.outputGradient[view.slot].baseAddress!)
            case .delta: start = bindings.delta!.baseAddress!
            }
            return start + view.offset.value(tokens: n) + task * view.taskStride
        }
        /// `rows` rows from row `first`: sizes in `rows`, strides in n.
        func execute(_ step: CompiledProgram.Step, rows: Int, first: Int, threads: Int) {
            Self.execute(step.kernel, alpha: step.contraction.alpha, accumulate: step.contraction.accumulate,
                         size: { $0.value(tokens: rows) }, stride: { $0.value(tokens: n) }, threads: threads) { view in
                base(view) + first * view.tokenRowStride
            }
        }
        func stages(_ range: Range<Int>, rows: Int, first: Int, threads: Int) {
            for s in range {
                let stage = program.stages[s]
                Kernels.stage(stage.count, flops: program.stageFlops[s].value(tokens: rows), threads: threads) { i, threads in
                    execute(stage[i], rows: rows, first: first, threads: threads)
                }
            }
        }
        if n == 0 && program.flops.perToken > 0 { return }
        let rowLocal = program.rowLocalStages
        if rowLocal > 0 {
            RowBlocks.each(rows: n, rowWork: program.rowLocalFlops.perToken, threads: threads) { rows, first, threads in
                stages(0..<rowLocal, rows: rows, first: first, threads: threads)
            }
        }
        stages(rowLocal..<program.stages.count, rows: n, first: 0, threads: threads)
    }
}

/// A program with each step lowered (and its kernel chosen, `KernelStep`) and
/// each stage's flops summed, once per interpreter: what `run` needs on every call.
struct CompiledProgram {
    struct Step {
        let contraction: Contraction
        let lowered: Lowered
        /// The kernel it runs, as the emitter's generated code runs it.
        let kernel: KernelStep
    }
    let stages: [[Step]]
    let stageFlops: [Extent]
    let flops: Extent
    let rowLocalStages: Int
    /// Flops of the row-local stages.
    let rowLocalFlops: Extent
    /// The workspace a block of rows needs, when the program runs on `RowBlocks`
    /// (it maps token rows independently); nil otherwise.
    let rowBlockWorkspace: Extent?

    init(_ program: Program) {
        stages = program.stages.map { stage in
            stage.map { c in
                let lowered = c.lowered!
                return Step(contraction: c, lowered: lowered, kernel: KernelStep(lowered))
            }
        }
        stageFlops = stages.map { $0.reduce(Extent(0)) { $0 + $1.lowered.flops } }
        flops = stageFlops.reduce(Extent(0), +)
        rowLocalStages = program.rowLocalStages
        rowLocalFlops = stageFlops.prefix(rowLocalStages).reduce(Extent(0), +)
        rowBlockWorkspace = program.mapsRowsIndependently ? program.workspaceExtent : nil
        readsTask = program.readsTask
    }

    /// Whether some view moves with the task (`Program.readsTask`).
    let readsTask: Bool

    var isEmpty: Bool { stages.isEmpty }
}

/// A fused layer program's key: the layer and its modules in call order.
struct LayerKey: Hashable {
    let layer: Int
    let modules: [String]
}

extension PlanInterpreter {
    /// Runs one kernel (`KernelStep`, what the emitter writes as a call or as
    /// loops): `alpha`, `accumulate` are a contraction's (vector steps carry
    /// their own); `size` evaluates an extent for the rows in hand, `stride`
    /// for all n rows; `at` is a view's first element.
    static func execute(_ kernel: KernelStep, alpha: Float, accumulate: Bool, size: (Extent) -> Int, stride: (Extent) -> Int,
                        threads: Int, at: (TensorView) -> UnsafeMutablePointer<Float>) {
        func loops(_ dims: [LoopDim]) -> [Kernels.Loop] {
            dims.map { Kernels.Loop(extent: size($0.extent), left: stride($0.left), right: stride($0.right),
                                    output: stride($0.output), reduces: $0.reduces) }
        }
        switch kernel {
        case .loops(let g):
            Kernels.smallProduct(loops: loops(g.loops), transA: g.transLeft, transB: g.transRight, m: size(g.m), n: size(g.n),
                                 k: size(g.k), alpha: alpha, a: at(g.left), lda: stride(g.lda), b: at(g.right),
                                 ldb: stride(g.ldb), accumulate: accumulate, c: at(g.output), ldc: stride(g.ldc))
        case .panel(let g, let product):
            Kernels.panelProduct(product, transA: g.transLeft, m: size(g.m), n: size(g.n), k: size(g.k), alpha: alpha,
                                 a: at(g.left), lda: stride(g.lda), b: at(g.right), ldb: stride(g.ldb),
                                 beta: accumulate ? 1 : 0, c: at(g.output), ldc: stride(g.ldc), panels: size(product.panels),
                                 panelStride: stride(product.strides.panel), innerStride: stride(product.strides.inner),
                                 threads: threads)
        case .gemm(let g):
            Kernels.loopedGemm(loops: loops(g.loops), transA: g.transLeft, transB: g.transRight,
                               m: size(g.m), n: size(g.n), k: size(g.k), alpha: alpha, a: at(g.left), lda: stride(g.lda),
                               b: at(g.right), ldb: stride(g.ldb), beta: accumulate ? 1 : 0, c: at(g.output),
                               ldc: stride(g.ldc), threads: threads)
        case .elementwise(let e, _):
            Kernels.elementwise(dims: loops(e.dims), alpha: alpha, accumulate: accumulate,
                                a: at(e.a), b: e.b.map { UnsafePointer(at($0)) }, out: at(e.output))
        case .map, .rowNorm, .rowScale:
            StepRunner.vector(kernel, size: size, stride: stride, threads: threads, at: at)
        }
    }
}
