import AdaptRuntime

/// `train:` (DESIGN §3): backward computes no gradient for a frozen tensor.
/// The VJP is derived for every stored tensor; this pass then removes the
/// steps that write a frozen tensor's gradient and, backwards through each
/// program, every step whose result nothing kept reads (the recomputed `z =
/// x·Aᵀ` that only a frozen B's gradient needed, say). The frozen gradients
/// are then never written: they stay at zero, exactly. A plan without frozen
/// tensors is returned as it was, so specs without `train:` generate the same code.
enum FrozenGradients {
    static func prune(_ groups: inout [GroupPlan], parameters: [ParameterTensor]) {
        let frozen = parameters.filter { !$0.trainable }.map { $0.offset..<($0.offset + $0.count) }
        guard !frozen.isEmpty else { return }
        for g in groups.indices {
            for p in groups[g].pairs.indices {
                groups[g].pairs[p].backward = prune(groups[g].pairs[p].backward, frozen: frozen, intermediates: [.workspace])
            }
            for f in groups[g].layerBackwards.indices {
                groups[g].layerBackwards[f].program = prune(groups[g].layerBackwards[f].program, frozen: frozen,
                                                            intermediates: [.workspace])
            }
            // finishBackward reads prepared gradients (from backward) and writes
            // those of earlier prepared values only for its own later steps.
            groups[g].finishBackward = prune(groups[g].finishBackward, frozen: frozen,
                                             intermediates: [.workspace, .preparedGradients])
        }
    }

    /// The program without the steps that write a frozen gradient or feed only
    /// removed steps. `intermediates`: storages whose values matter only to
    /// later steps of this program; a result anywhere else is kept when it is
    /// not a frozen gradient.
    static func prune(_ program: Program, frozen: [Range<Int>], intermediates: Set<Storage>) -> Program {
        func isFrozenGradient(_ view: TensorView) -> Bool {
            guard view.storage == .gradients, view.offset.isFixed else { return false }
            let start = view.offset.constant
            return frozen.contains { $0.contains(start) }
        }
        var needed: [TensorView] = []
        var keep = program.stages.map { [Bool](repeating: false, count: $0.count) }
        for s in program.stages.indices.reversed() {
            let stage = program.stages[s]
            // Steps of one stage are independent: decide them all against what later stages need.
            var reads: [TensorView] = []
            for (c, step) in stage.enumerated() {
                let live: Bool
                if isFrozenGradient(step.output) {
                    live = false
                } else if intermediates.contains(step.output.storage) {
                    live = needed.contains { $0.storage == step.output.storage && $0.mayOverlap(step.output) }
                } else {
                    live = true
                }
                guard live else { continue }
                keep[s][c] = true
                reads += [step.a] + (step.b.map { [$0] } ?? [])
                // `+=` reads what earlier steps wrote there.
                if step.accumulate { reads.append(step.output) }
            }
            needed += reads.filter { intermediates.contains($0.storage) }
        }
        guard keep.contains(where: { $0.contains(false) }) else { return program }
        let stages = program.stages.indices.map { s in program.stages[s].indices.filter { keep[s][$0] }.map { program.stages[s][$0] } }
        return Program(rowLocal: Array(stages.prefix(program.rowLocalStages)), then: Array(stages.dropFirst(program.rowLocalStages)))
    }
}
