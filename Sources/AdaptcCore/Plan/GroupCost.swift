import AdaptRuntime

/// What one group's plan costs for `tokens` rows: flops of forward, training
/// and prepare, prepared state, peak intermediates, next to the LoRA of equal
/// per-token cost and the dense ΔW it stands for (MetaTT's point: parameters
/// that grow with the sum, not the product, of the modes). `adaptc plan`
/// renders it (`PlanReport`).
public struct GroupCost {
    public struct Figures {
        public var parameters = 0
        /// Forward flops for `tokens` rows (all pairs, one pass; modules that read
        /// one input share their input-side work, as the layer-fused forward does).
        public var forwardFlops = 0
        /// Forward+backward flops for `tokens` rows.
        public var trainingFlops = 0
        /// Token-independent flops per weight update.
        public var prepareFlops = 0
        /// Floats of prepared state.
        public var preparedFloats = 0
        /// Bytes of stored parameters (float32).
        public var parameterBytes: Int { parameters * 4 }
        /// Most floats of intermediates live at once in any one of this group's calls for
        /// `tokens` rows (`Program.peakLiveFloats`), not the workspace's size.
        public var peakIntermediate = 0
    }

    public var adapter = Figures()
    /// The LoRA whose per-token flops match the adapter's (rank ≥ 1).
    public var equalCostLoRA = Figures()
    public var equalCostRank: Double = 1
    public var dense = Figures()

    /// The cost of `group` whose parameters are among `parameters`, for `tokens` rows.
    public init(group: GroupPlan, parameters: [ParameterTensor], tokens: Int) {
        var adapter = Figures(), dense = Figures(), lora = Figures()
        adapter.parameters = parameters.filter { $0.name?.group == group.name }.map(\.count).reduce(0, +)
        let fusedPairs = Set(group.layerForwards.flatMap { f in f.modules.map { "\(f.layer).\($0)" } })
        adapter.forwardFlops = group.layerForwards.map { $0.program.flops.value(tokens: tokens) }.reduce(0, +)
        var programs: [Program] = group.layerForwards.map(\.program) + [group.prepare, group.finishBackward]
        var sides = 0
        for pair in group.pairs {
            if !fusedPairs.contains(pair.key) { adapter.forwardFlops += pair.forward.flops.value(tokens: tokens) }
            adapter.trainingFlops += pair.backward.flops.value(tokens: tokens)
            programs += [pair.forward, pair.backward, pair.materialize]
            let weights = pair.outFeatures * pair.inFeatures
            dense.parameters += weights
            dense.forwardFlops += 2 * tokens * weights
            dense.trainingFlops += 6 * tokens * weights
            sides += pair.outFeatures + pair.inFeatures
        }
        adapter.trainingFlops += adapter.forwardFlops
        adapter.prepareFlops = group.prepare.flops.value(tokens: 0)
        adapter.preparedFloats = Set((group.prepare.contractions).map(\.output)).map { $0.count.constant }.reduce(0, +)
        adapter.peakIntermediate = programs.map { $0.peakLiveFloats(in: .workspace, tokens: tokens) }.max() ?? 0
        // LoRA of rank ρ on every pair costs 2·ρ·(in + out) per token and pair.
        let perToken = Double(adapter.forwardFlops) / Double(max(tokens, 1))
        let rank = max(1, perToken / Double(2 * max(sides, 1)))
        lora.parameters = Int((rank * Double(sides)).rounded())
        lora.forwardFlops = Int((2 * rank * Double(sides) * Double(tokens)).rounded())
        lora.trainingFlops = 3 * lora.forwardFlops
        self.adapter = adapter
        self.dense = dense
        equalCostLoRA = lora
        equalCostRank = rank
    }
}
