import AdaptRuntime

/// The generated type's public entry points: each checks its arguments
/// (throwing, never trapping, on user input), makes prepared state current,
/// and calls the kernel of the requested pair. Pairs whose programs share a
/// kernel and whose owned tensors sit at offsets affine in (layer, module)
/// share one case of the switch, the offsets computed from the call's
/// arguments (`AffineFamilies`, the layer and module as index sources): one
/// case per program shape, not one per pair.
struct DispatchEmitter {
    let checked: CheckedSpec
    let plan: Plan

    private var access: String { checked.spec.codegen.access == .public ? "public " : "" }

    /// The buffers a kernel may take, bound in every entry point from `buffers(n)`.
    private var bufferNames: String { plan.needsPrepare ? "p, g, q, dq, w, threads" : "p, g, w, threads" }
    private var unusedBases: String { plan.needsPrepare ? "(p, g, q, dq, w)" : "(p, g, w)" }

    /// `buffers(n)`, emitted once: the storage's base pointers, the workspace for
    /// `n` token rows (grown where it is short) and the thread count.
    private func emitBufferFunction(into file: inout SourceText) {
        var values = ["storage.parameterBase", "storage.gradients.baseAddress!"]
        if plan.needsPrepare { values += ["storage.prepared.baseAddress!", "storage.preparedGradients.baseAddress!"] }
        values += ["storage.workspace(atLeast: \(swift(plan.workspace)))", "storage.threads"]
        let types = [String](repeating: "Floats", count: values.count - 1) + ["Int"]
        file.line("    /// The buffers a kernel may take: base pointers, the workspace for `n` token rows, the thread count.")
        file.line("    /// Entry points bind them all (`_ = …`): not every kernel takes all of them.")
        file.line("    private func buffers(_ n: Int) -> (\(types.joined(separator: ", "))) {")
        file.line("        (\(values.joined(separator: ", ")))")
        file.line("    }")
        file.line()
    }

    /// The buffers every entry point binds before calling a kernel (making
    /// prepared state current first where it reads it).
    private func emitBuffers(into file: inout SourceText, ensurePrepared: Bool) {
        if ensurePrepared && plan.needsPrepare { file.line("        if !storage.preparedIsCurrent { prepare() }") }
        file.line("        let (\(bufferNames)) = buffers(n)")
        file.line("        _ = \(unusedBases)")
    }

    /// True when a group has `dora: true`: its entry points then wrap private
    /// LoRA dispatches with DoRA's steps (`DoRAEmitter`).
    private var hasDoRA: Bool { plan.pairs.contains { $0.dora != nil } }

    func emit(into file: inout SourceText, kernels: inout KernelEmitter) {
        emitBufferFunction(into: &file)
        emitPrepare(into: &file, kernels: &kernels)
        let dora = hasDoRA ? DoRAEmitter(checked: checked, plan: plan) : nil
        dora?.emitPrepareBase(into: &file)
        for entry in EntryPoints(plan: plan, access: access, hasDoRA: hasDoRA).rows {
            render(entry, dora: dora, into: &file, kernels: &kernels)
            if entry.role == "materialize" { dora?.emitBaseEntryPoints(into: &file) }
        }
    }

    /// One entry point from its row: the header, the argument checks, the
    /// buffers, the table of kernel calls, then what runs where the table has
    /// no case (`EntryPoint.fallback`). Pair entry points of a spec with DoRA
    /// groups are wrapped in DoRA's steps, the table in a private function.
    private func render(_ entry: EntryPoint, dora: DoRAEmitter?, into file: inout SourceText, kernels: inout KernelEmitter) {
        switch entry.table {
        case .pairs(let programs):
            if let dora {
                // The public entry point with DoRA's steps, then the plain dispatch as a private function.
                dora.emitEntryPoint(entry.role, header: entry.header, checks: entry.checks, into: &file)
                for h in DoRAEmitter.privateHeader(entry.role) { file.line("    " + h) }
            } else {
                for h in entry.header { file.line("    " + h) }
                file.line("        let index = try Self.pair(layer, module)")
                for c in entry.checks { file.line("        " + c) }
                if programs.contains(where: { $0.flops.perToken > 0 }) { file.line("        if n == 0 { return }") }
            }
            emitBuffers(into: &file, ensurePrepared: true)
            emitPairTable(programs, role: entry.role, into: &file, kernels: &kernels)
        case .layers(let fused):
            for h in entry.header { file.line("    " + h) }
            for c in entry.checks { file.line("        " + c) }
            if !fused.isEmpty {
                for b in entry.bindings { file.line("        " + b) }
                emitBuffers(into: &file, ensurePrepared: true)
                emitFusedTable(fused, role: entry.role, indent: "        ", into: &file, kernels: &kernels, token: entry.token)
            }
        }
        for f in entry.fallback { file.line("        " + f) }
        file.line("    }")
        file.line()
    }

    /// A kernel call of one pair (or one layer's fused modules), its owned
    /// pointer arguments left to the family it falls in (`text`).
    private struct DispatchCall {
        var call: KernelEmitter.Call
        /// The `RowBlocks` wrapper a forward calls instead of the kernel itself.
        var rows: String? = nil
        /// The statement, given the owned pointer arguments' expressions.
        var text: ([String]) -> String
    }

    private func moduleIndex(_ name: String) -> Int { checked.spec.model.modules.firstIndex { $0.name == name }! }

    /// Calls cut into families (`AffineFamilies`): one kernel, the same owned
    /// storages, offsets affine in the dispatch arguments (`indices`: layer, module).
    private func families(_ calls: [DispatchCall], indices: (Int) -> [Int]) -> [AffineFamily] {
        AffineFamilies.partition(count: calls.count, key: { i in
            [calls[i].call.kernel, calls[i].rows ?? ""] + calls[i].call.pointers.map(\.storage.rawValue)
        }, indices: indices, offsets: { calls[$0].call.pointers.map(\.offset) })
    }

    /// Each owned pointer argument of a family's calls: the storage's base plus
    /// its offset as a function of `layer` and `module` (constant where it does not move).
    private func pointerExpressions(_ call: KernelEmitter.Call, _ family: AffineFamily) -> [String] {
        zip(call.pointers, family.offsets).map { pointer, offset in
            let terms = [(offset.strides[0], "layer"), (offset.strides[1], "module.rawValue")]
            let moves = terms.contains { $0.0 != 0 }
            let value = affine(constant: offset.base, terms: terms)
            return KernelEmitter.ownedBase(pointer.storage) + " + " + (moves ? "(\(value))" : value)
        }
    }

    private static func literalPointers(_ call: KernelEmitter.Call) -> [String] {
        call.pointers.map { KernelEmitter.ownedBase($0.storage) + " + \($0.offset)" }
    }

    private func arguments(_ program: Program, _ call: KernelEmitter.Call, pointers: [String]? = nil,
                           token: (KernelEmitter.TokenArgument) -> String) -> String {
        (["n"] + KernelEmitter.tokenArguments(program).map(token) + (pointers ?? Self.literalPointers(call))).joined(separator: ", ")
    }

    /// The call of `program`'s kernel (emitted or reused). A forward program
    /// that maps token rows independently calls its `RowBlocks` kernel instead
    /// (`KernelEmitter.rowBlocks`; `widths`: row width of each token buffer, by
    /// storage and slot).
    private func dispatchCall(_ program: Program, role: String, kernels: inout KernelEmitter, forward: Bool,
                              token: @escaping (KernelEmitter.TokenArgument) -> String,
                              widths: (Storage, Int) -> Int) -> DispatchCall {
        let call = kernels.kernel(for: program, role: role)
        guard forward else {
            return DispatchCall(call: call) { "Self.\(call.kernel)(\(arguments(program, call, pointers: $0, token: token)), threads: threads)" }
        }
        let rows = program.mapsRowsIndependently ? kernels.rowBlocks(for: program, call, widths: widths) : nil
        return DispatchCall(call: call, rows: rows) { forwardCall(program, call, rows: rows, pointers: $0, token: token) }
    }

    /// The statement that runs a forward program: its kernel called once, or its `RowBlocks` kernel `rows`.
    private func forwardCall(_ program: Program, _ call: KernelEmitter.Call, rows: String?, pointers: [String],
                             token: (KernelEmitter.TokenArgument) -> String) -> String {
        guard let rows else {
            return "Self.\(call.kernel)(\(arguments(program, call, pointers: pointers, token: token)), threads: threads)"
        }
        let tokens = KernelEmitter.tokenArguments(program).filter { $0.storage != .workspace }.map(token)
        return "Self.\(rows)(\((["n"] + tokens + pointers).joined(separator: ", ")), storage: storage, threads: threads)"
    }

    private func emitPrepare(into file: inout SourceText, kernels: inout KernelEmitter) {
        guard plan.needsPrepare else {
            file.line("    /// Token-independent work, once per weight update (nothing to do for this spec).")
            file.line("    \(access)func prepare() {}")
            file.line()
            file.line("    /// Pushes gradients of prepared intermediates to the parameters (nothing to do for this spec).")
            file.line("    \(access)func finishBackward() {}")
            file.line()
            return
        }
        for (role, doc) in [("prepare", "Computes the prepared state from the parameters: after loading and after every update."),
                            ("finishBackward", "Pushes the gradients of prepared state (accumulated by `backward`) into `gradients`, then clears them.")] {
            file.line("    /// \(doc)")
            file.line("    \(access)func \(role)() {")
            let programs = plan.groups.map { (group: $0, program: role == "prepare" ? $0.prepare : $0.finishBackward) }
            // No group has work here (e.g. prepared state no backward writes to): no buffers to bind.
            if programs.contains(where: { !$0.program.isEmpty }) {
                file.line("        let n = 0")
                emitBuffers(into: &file, ensurePrepared: false)
            }
            for (group, program) in programs {
                if program.isEmpty { continue }
                let call = kernels.kernel(for: program, role: role)
                file.line("        Self.\(call.kernel)(\(arguments(program, call) { $0.name }), threads: threads)  // group \(group.name)")
            }
            file.line(role == "prepare" ? "        storage.markPrepared()" : "        storage.zeroPreparedGradients()")
            file.line("    }")
            file.line()
        }
    }

    /// The switch over pair indices: one case per family of pairs that call one
    /// kernel, its owned offsets affine in (layer, module).
    private func emitPairTable(_ programs: [Program], role: String, into file: inout SourceText, kernels: inout KernelEmitter) {
        let pairs = plan.pairs
        let calls = programs.enumerated().map { i, program in
            dispatchCall(program, role: role, kernels: &kernels, forward: role == "forward", token: { $0.name }) { storage, _ in
                storage == .input ? pairs[i].inFeatures : pairs[i].outFeatures
            }
        }
        file.line("        switch index {")
        for family in families(calls, indices: { [pairs[$0].layer, moduleIndex(pairs[$0].module)] }) {
            let first = calls[family.members[0]]
            file.line("        case \(caseRanges(family.members)): " + first.text(pointerExpressions(first.call, family)))
        }
        file.line("        default: break")
        file.line("        }")
    }

    /// The literal dispatch of fused programs: per set of modules, a switch on
    /// the layer calling that layer's kernel (`token` names each token argument).
    private func emitFusedTable(_ fused: [LayerForward], role: String, indent: String, into file: inout SourceText,
                                kernels: inout KernelEmitter, token: @escaping (KernelEmitter.TokenArgument) -> String) {
        let modules = checked.spec.model.modules
        var byModules: [[String]: [LayerForward]] = [:]
        var moduleSets: [[String]] = []
        for f in fused {
            if byModules[f.modules] == nil { moduleSets.append(f.modules) }
            byModules[f.modules, default: []].append(f)
        }
        for set in moduleSets {
            let cases = set.map { name in "." + modules.first { $0.name == name }!.caseName }
            file.line(indent + "if modules == [\(cases.joined(separator: ", "))] {")
            file.line(indent + "    switch layer {")
            let layers = byModules[set]!
            let calls = layers.map { f in
                let pairs = f.modules.map { m in plan.pair(layer: f.layer, module: m)! }
                return dispatchCall(f.program, role: role, kernels: &kernels, forward: role == "layerForward", token: token) { storage, slot in
                    storage == .input ? pairs[0].inFeatures : pairs[slot].outFeatures
                }
            }
            // Layers whose calls differ only in offsets affine in the layer share one case.
            for family in families(calls, indices: { [layers[$0].layer, 0] }) {
                let first = calls[family.members[0]]
                file.line(indent + "    case \(caseRanges(family.members.map { layers[$0].layer })): "
                          + first.text(pointerExpressions(first.call, family)) + "; return")
            }
            file.line(indent + "    default: break")
            file.line(indent + "    }")
            file.line(indent + "}")
        }
    }
}
