import AdaptRuntime

/// The generated type's declarations: its doc comment, the `Module` enum, the
/// spec's constants, the parameter layout, shapes, storage and initialiser.
struct DeclarationEmitter {
    let checked: CheckedSpec
    let plan: Plan

    func emit(into file: inout SourceText) {
        let spec = checked.spec
        let access = spec.codegen.access == .public ? "public " : ""
        let modules = spec.model.modules
        file.line("/// Adapter for spec `\(spec.name)`: \(plan.pairs.count) (layer, module) pairs, \(plan.parameterCount) parameters.")
        file.line("///")
        if plan.needsPrepare {
            file.line("/// `prepare()` computes \(plan.preparedCount) floats of prepared state from the parameters")
            file.line("/// (the weight-side products the plan hoisted out of forward). It must run after")
            file.line("/// loading and after every parameter update; `init(weights:)` runs it. Taking")
            file.line("/// `parameters` marks the prepared state stale, and forward, backward and")
            file.line("/// materialize then run `prepare()` first, so results are never stale as long as")
            file.line("/// updates go through `parameters` taken after the last call (a pointer kept from")
            file.line("/// earlier bypasses that: call `prepare()` yourself after writing through it).")
            file.line("/// `finishBackward()` pushes the gradients of prepared state back to `gradients`;")
            file.line("/// call it once after the backward calls of a step, before reading `gradients`.")
            file.line("///")
        }
        let hasDoRA = plan.pairs.contains { $0.dora != nil }
        if hasDoRA { DoRAEmitter.typeDocumentation(into: &file) }
        file.line("/// Not safe to call from several threads at once: calls share one workspace.")
        file.line("\(access)final class \(spec.adapterTypeName): GeneratedAdapter {")
        file.line("    \(access)enum Module: Int, CaseIterable, Hashable, Sendable {")
        for (i, m) in modules.enumerated() { file.line("        case \(m.caseName) = \(i)") }
        file.line("    }")
        file.line()
        file.line("    \(access)static let specName = \(SwiftEmitter.quoted(spec.name))")
        file.line("    \(access)static let specHash = \(SwiftEmitter.quoted(SpecHash.hash(checked)))")
        file.line("    \(access)static let parameterCount = \(plan.parameterCount)")
        if plan.needsPrepare {
            file.line("    /// Floats of prepared state.")
            file.line("    \(access)static let preparedCount = \(plan.preparedCount)")
            file.line("    /// Floats of prepared state with a gradient (the first ones; panel copies have none).")
            file.line("    \(access)static let preparedGradientCount = \(plan.preparedGradientCount)")
        }
        file.line("    /// Layers of the model (\(spec.model.layers)); pairs without an adapter throw.")
        file.line("    \(access)static let layerCount = \(spec.model.layers)")
        file.line()
        emitLayout(access: access, into: &file)
        file.line("    \(access)static func moduleName(_ module: Module) -> String {")
        file.line("        switch module {")
        for m in modules { file.line("        case .\(m.caseName): return \(SwiftEmitter.quoted(m.name))") }
        file.line("        }")
        file.line("    }")
        file.line()
        file.line("    /// `[out, in]` of a module's weight.")
        file.line("    \(access)static func shape(of module: Module) -> (out: Int, in: Int) {")
        file.line("        switch module {")
        for m in modules { file.line("        case .\(m.caseName): return (\(m.outFeatures), \(m.inFeatures))") }
        file.line("        }")
        file.line("    }")
        file.line()
        file.line("    \(access)let storage: AdapterStorage")
        file.line()
        if hasDoRA { DoRAEmitter(checked: checked, plan: plan).emitStorage(into: &file) }
        file.line("    /// Zero parameters; `threads` TBB threads (0: TBB's default).")
        file.line("    \(access)init(threads: Int = 0) {")
        let prepared = plan.needsPrepare
            ? "preparedCount: Self.preparedCount, preparedGradientCount: Self.preparedGradientCount, " : ""
        file.line("        storage = AdapterStorage(parameterCount: Self.parameterCount, \(prepared)threads: threads)")
        file.line("    }")
        file.line()
        // Pair index: layer * modules + module, -1 where no group covers the pair.
        var slots = [Int](repeating: -1, count: spec.model.layers * modules.count)
        for (i, pair) in plan.pairs.enumerated() {
            let m = modules.firstIndex { $0.name == pair.module }!
            slots[pair.layer * modules.count + m] = i
        }
        file.line("    private static let pairIndex: [Int] = \(slots)")
        file.line()
        file.line("    private static func pair(_ layer: Int, _ module: Module) throws -> Int {")
        file.line("        try AdapterArguments.pair(pairIndex, layer: layer, module: module, layerCount: layerCount, of: Self.self)")
        file.line("    }")
        file.line()
        file.line("    private static func expect(_ count: Int, _ expected: Int, _ what: String) throws {")
        file.line("        try AdapterArguments.expect(count, expected, what, of: Self.self)")
        file.line("    }")
        file.line()
    }

    /// `parameterLayout`: per-layer lora tensors of one module at a fixed
    /// layer stride as `ParameterRun`s, the rest literally. Written literally
    /// throughout when the runs would not expand to the plan's layout exactly.
    private func emitLayout(access: String, into file: inout SourceText) {
        func literal(_ p: ParameterTensor) -> String {
            // Frozen tensors (`train:`) say so; the rest keep the default, as before `train:` existed.
            let frozen = p.trainable ? "" : ", trainable: false"
            return "ParameterTensor(key: \(SwiftEmitter.quoted(p.key)), shape: \(p.shape), offset: \(p.offset)\(frozen))"
        }
        let (tensors, runs) = layoutRuns()
        file.line("    /// Every stored tensor: adapter-file key, shape, offset in `parameters`.")
        guard !runs.isEmpty, ParameterTensor.layout(tensors, runs: runs) == plan.parameters else {
            file.line("    \(access)static let parameterLayout: [ParameterTensor] = [")
            for p in plan.parameters { file.line("        \(literal(p)),") }
            file.line("    ]")
            file.line()
            return
        }
        file.line("    \(access)static let parameterLayout: [ParameterTensor] = ParameterTensor.layout([")
        for p in tensors { file.line("        \(literal(p)),") }
        file.line("    ], runs: [")
        for r in runs {
            let frozen = r.trainable ? "" : ", trainable: false"
            file.line("        ParameterRun(group: \(SwiftEmitter.quoted(r.group)), role: .\(r.role.rawValue), module: \(SwiftEmitter.quoted(r.module)), "
                      + "layers: \(layerList(r.layers)), shape: \(r.shape), offset: \(r.offset), layerStride: \(r.layerStride)\(frozen)),")
        }
        file.line("    ])")
        file.line()
    }

    /// The plan's tensors cut into runs: per-layer lora tensors of one (group, role, module, shape)
    /// whose offsets are affine in the layer (`AffineFamilies`); a run of one stays a literal.
    private func layoutRuns() -> (tensors: [ParameterTensor], runs: [ParameterRun]) {
        let parameters = plan.parameters
        let perLayer: [(role: ParameterRun.Role, group: String, module: String, layer: Int)?] = parameters.map { p in
            // Only lora keys have these roles; a tensor group's keys parse to cores and factors.
            for group in plan.groups {
                guard let key = TensorKey(parsing: p.key, structure: group.structure), key.group == group.name else { continue }
                switch key.role {
                case let .loraA(.layer(l), module): return (.A, group.name, module, l)
                case let .loraB(.layer(l), module): return (.B, group.name, module, l)
                case let .magnitude(l, module): return (.magnitude, group.name, module, l)
                default: return nil
                }
            }
            return nil
        }
        /// What tensors of one run share; any other tensor is a family of its own.
        enum Kind: Hashable {
            case run(role: ParameterRun.Role, group: String, module: String, shape: [Int], trainable: Bool)
            case alone(Int)
        }
        let families = AffineFamilies.partition(count: parameters.count, key: { i -> Kind in
            guard let t = perLayer[i] else { return .alone(i) }
            return .run(role: t.role, group: t.group, module: t.module, shape: parameters[i].shape, trainable: parameters[i].trainable)
        }, indices: { [perLayer[$0]?.layer ?? 0] }, offsets: { [parameters[$0].offset] })
        var tensors: [ParameterTensor] = [], runs: [ParameterRun] = []
        for family in families {
            let first = family.members[0]
            guard family.members.count > 1, let t = perLayer[first] else {
                tensors += family.members.map { parameters[$0] }
                continue
            }
            let offset = family.offsets[0]
            runs.append(ParameterRun(group: t.group, role: t.role, module: t.module, layers: family.members.map { perLayer[$0]!.layer },
                                     shape: parameters[first].shape, offset: parameters[first].offset, layerStride: offset.strides[0],
                                     trainable: parameters[first].trainable))
        }
        return (tensors, runs)
    }

    /// Layers as a Swift `[Int]` expression: runs as ranges (`Array(0...23)`, `Array(0...3) + [6]`).
    private func layerList(_ layers: [Int]) -> String {
        let runs = layers.consecutiveRuns
        if runs.count == layers.count { return "\(layers)" }
        return runs.map { $0.count == 1 ? "[\($0.lowerBound)]" : "Array(\($0.lowerBound)...\($0.upperBound))" }.joined(separator: " + ")
    }
}