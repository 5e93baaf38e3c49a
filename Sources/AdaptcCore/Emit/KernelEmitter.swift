import AdaptRuntime

/// Turns plan programs into straight-line Swift kernels with literal shapes
/// (FFTW-codelet style). Programs that differ only in where their owned
/// tensors sit (parameters, gradients, prepared state) share one kernel:
/// those are passed in as pointers, everything else is a literal.
///
/// Each lowered step becomes one of: for small fixed-size products and
/// element-wise steps, nested loops with literal bounds the Swift compiler can
/// unroll and vectorise (`Kernels.elementwise` for large element-wise ones); a
/// `Kernels.panelGemm` / `Kernels.panelDot` call for panel products
/// (`GEMMStep.panelProduct`: a packed factor, or a thin product read in
/// place); a `Kernels.gemm` call (OpenBLAS, GEMV for one row, TBB splits for
/// large products); or `Kernels.loopedGemm` when modes could not merge into
/// the GEMM. Forward kernels that run on row blocks get a `…Rows` wrapper;
/// a program's row-local stages (backward's) run inside `RowBlocks.each`,
/// sizes in the block's `rows`, each token view moved to the block's `first` row.
struct KernelEmitter {
    /// A kernel and how one program calls it.
    struct Call {
        var kernel: String
        /// Owned-tensor pointer arguments: (storage, offset) in argument order.
        var pointers: [(storage: Storage, offset: Int)]
    }


    private(set) var kernels: [String] = []
    private var kernelByBody: [String: String] = [:]

    typealias TokenArgument = (name: String, storage: Storage, slot: Int)

    /// Token-side argument names in the fixed order every kernel declares them.
    static func tokenArguments(_ program: Program) -> [TokenArgument] {
        var used = Set<String>()
        var result: [TokenArgument] = []
        let order: [Storage] = [.input, .outputGradient, .output, .inputGradient, .delta, .workspace]
        let views = program.contractions.flatMap { [$0.output, $0.a] + ($0.b.map { [$0] } ?? []) }
        for storage in order {
            let slots = Set(views.filter { $0.storage == storage }.map(\.slot)).sorted()
            for slot in slots {
                let name = argumentName(storage, slot)
                if used.insert(name).inserted { result.append((name, storage, slot)) }
            }
        }
        return result
    }

    static func argumentName(_ storage: Storage, _ slot: Int) -> String {
        switch storage {
        case .input: return "x"
        case .outputGradient: return slot == 0 ? "dy" : "dy\(slot)"
        case .output: return slot == 0 ? "y" : "y\(slot)"
        case .inputGradient: return "dx"
        case .delta: return "delta"
        case .workspace: return "w"
        case .parameters, .gradients, .prepared, .preparedGradients: return "p"
        }
    }

    /// The dispatcher's base pointer for an owned storage.
    static func ownedBase(_ storage: Storage) -> String {
        switch storage {
        case .parameters: return "p"
        case .gradients: return "g"
        case .prepared: return "q"
        case .preparedGradients: return "dq"
        default: preconditionFailure("not an owned storage: \(storage)")
        }
    }

    /// Emits (or reuses) the kernel for `program`; returns how to call it.
    mutating func kernel(for program: Program, role: String) -> Call {
        var pointers: [(storage: Storage, offset: Int)] = []
        func pointer(_ view: TensorView) -> String {
            if view.storage.isOwned {
                let key = (view.storage, view.offset.constant)
                if let i = pointers.firstIndex(where: { $0.storage == key.0 && $0.offset == key.1 }) { return "p\(i)" }
                pointers.append(key)
                return "p\(pointers.count - 1)"
            }
            let base = KernelEmitter.argumentName(view.storage, view.slot)
            return view.offset == Extent(0) ? base : "(\(base) + \(swift(view.offset)))"
        }
        var body: [String] = []
        // In a row block, token views start at the block's first row: each buffer, by
        // the row stride of the views on it, is moved there once (`xRow1024 = x + first * 1024`).
        var shifted: [String: String] = [:]
        // Lowering a step takes a while: once per step here.
        let lowered = program.stages.map { $0.map { $0.lowered! } }
        let stageFlops = lowered.map { $0.reduce(Extent(0)) { $0 + $1.flops } }
        // Token buffers a stage member may pick by index: storages whose slots are 0..<count, all arguments.
        let slotCount: [Storage: Int] = Dictionary(grouping: KernelEmitter.tokenArguments(program), by: \.storage)
            .compactMapValues { args in Set(args.map(\.slot)) == Set(0..<args.count) ? args.count : nil }
        func emit(_ s: Int, rows: String, into lines: inout [String]) {
            let stage = program.stages[s]
            let place: (TensorView) -> String = rows == "n" ? pointer : { view in
                let stride = view.tokenRowStride
                guard stride != 0 else { return pointer(view) }
                let buffer = KernelEmitter.argumentName(view.storage, view.slot), name = "\(buffer)Row\(stride)"
                shifted[name] = "\(buffer) + first * \(stride)"
                return view.offset == Extent(0) ? name : "(\(name) + \(swift(view.offset)))"
            }
            lines.append("// stage \(s + 1): " + memberRuns(stage.map(\.description)).joined(separator: "; "))
            if stage.count == 1 {
                lines += step(stage[0], lowered[s][0], rows: rows, threads: "threads", pointer: place)
            } else {
                lines.append("Kernels.stage(\(stage.count), flops: \(swift(stageFlops[s], n: rows)), threads: threads) { i, threads in")
                let (blockSize, families, operands) = stageFamilies(stage, lowered[s], rows: rows, slotCount: slotCount, place: place)
                if families.count == stage.count {
                    // No two members share a shape: one literal case each, as they are.
                    lines.append("    switch i {")
                    for (i, c) in stage.enumerated() {
                        let steps = step(c, lowered[s][i], rows: rows, threads: "threads", pointer: place)
                        lines.append("    \(i == stage.count - 1 ? "default" : "case \(i)"):")
                        lines += steps.map { "        " + $0 }
                    }
                    lines.append("    }")
                } else {
                    // Members of one shape whose operands are affine in (i / R, i % R): one case, each
                    // operand computed from the index (`AffineFamilies.stage`, `StageOperand`).
                    lines.append("    switch i {")
                    let whole = blockSize == stage.count
                    // With R the whole stage the block is always 0 and the lane is i.
                    func index(_ offset: AffineOffset, from constant: Int? = nil) -> String {
                        affine(constant: constant ?? offset.base, terms: whole ? [(offset.strides[1], "i")]
                            : [(offset.strides[0], "(i / \(blockSize))"), (offset.strides[1], "(i % \(blockSize))")])
                    }
                    for (f, family) in families.enumerated() {
                        let first = family.members[0]
                        let own = operands[first]
                        // Each operand that moves with the index bound once at the case's top (`at0`, …):
                        // the step's own loops may use `i`.
                        var bindings: [String] = []
                        // Integer c of the member `i`: from its table, or affine; `relative`: minus the first member's.
                        func moves(_ c: Int) -> Bool { family.tables[c] != nil || family.offsets[c].strides.contains { $0 != 0 } }
                        func integer(_ c: Int, relative: Bool = false) -> String {
                            let offset = family.offsets[c]
                            if let table = family.tables[c] {
                                let shift = relative ? table[first]! : 0
                                return "[" + table.map { $0.map { String($0 - shift) } ?? "0" }.joined(separator: ", ") + "][i]"
                            }
                            // Minus what the index adds at the first member.
                            return relative ? index(offset, from: offset.base - offset.value(at: [first / blockSize, first % blockSize]))
                                : index(offset)
                        }
                        let moved: (TensorView) -> String = { view in
                            let k = own.firstIndex { $0.names(view) }!
                            let components = own[k].components
                            guard components.contains(where: moves) else {
                                return view.storage.isOwned ? pointer(view) : place(view)
                            }
                            let value: String
                            if view.storage.isOwned {
                                // From the first member's pointer.
                                value = pointer(view) + " + (" + integer(components.lowerBound, relative: true) + ")"
                            } else {
                                // A token buffer: its slot picked from the kernel's buffers of that storage
                                // (a table where it moves), then the offset, constant part and per-token part.
                                var origin = view
                                origin.offset = Extent(0)
                                let (slot, constant, perToken) = (components.lowerBound, components.lowerBound + 1, components.lowerBound + 2)
                                var base = place(origin)
                                if moves(slot) {
                                    let table = (0..<slotCount[view.storage]!).map { s -> String in
                                        var v = origin
                                        v.slot = s
                                        return place(v)
                                    }
                                    base = "[" + table.joined(separator: ", ") + "][" + integer(slot) + "]"
                                }
                                var parts = [base]
                                if moves(constant) || family.offsets[constant].base != 0 { parts.append("(" + integer(constant) + ")") }
                                if moves(perToken) || family.offsets[perToken].base != 0 { parts.append("(" + integer(perToken) + ") * n") }
                                value = parts.joined(separator: " + ")
                            }
                            let binding = "let at\(k) = " + value
                            if !bindings.contains(binding) { bindings.append(binding) }
                            return "at\(k)"
                        }
                        let label = f == families.count - 1 ? "default" : "case " + caseRanges(family.members)
                        let steps = step(stage[first], lowered[s][first], rows: rows, threads: "threads", pointer: moved)
                        lines.append("    \(label):")
                        lines += (bindings + steps).map { "        " + $0 }
                    }
                    lines.append("    }")
                }
                lines.append("}")
            }
        }
        if program.rowLocalStages > 0 {
            var block: [String] = []
            for s in 0..<program.rowLocalStages { emit(s, rows: "rows", into: &block) }
            let rowWork = stageFlops.prefix(program.rowLocalStages).reduce(Extent(0), +).perToken
            body.append("RowBlocks.each(rows: n, rowWork: \(rowWork), threads: threads) { rows, first, threads in")
            body += shifted.keys.sorted().map { "    let \($0) = \(shifted[$0]!)" }
            body += block.map { "    " + $0 }
            body.append("}")
        }
        for s in program.rowLocalStages..<program.stages.count { emit(s, rows: "n", into: &body) }
        var parameters = ["_ n: Int"]
        for arg in KernelEmitter.tokenArguments(program) {
            parameters.append("_ \(arg.name): Floats")
        }
        parameters += pointers.indices.map { "_ p\($0): Floats" }
        parameters.append("threads: Int")
        let signature = parameters.joined(separator: ", ")
        let key = signature + "\n" + body.joined(separator: "\n")
        if let name = kernelByBody[key] { return Call(kernel: name, pointers: pointers) }
        let name = "\(role)\(kernels.count)"
        kernelByBody[key] = name
        var text = ["    @inline(never)", "    private static func \(name)(\(signature)) {"]
        text += body.map { "        " + $0 }
        text.append("    }")
        kernels.append(text.joined(separator: "\n"))
        return Call(kernel: name, pointers: pointers)
    }

    /// An operand of a stage member, as the member's step names it: an owned
    /// tensor (storage, offset) or a token buffer (storage, slot, offset; its
    /// row stride in a row block). `components`: where its integers sit in the
    /// member's list that `AffineFamilies` fits — an owned offset; a token
    /// buffer's slot, offset and offset per token.
    struct StageOperand {
        var view: TensorView
        var components: Range<Int>

        func names(_ other: TensorView) -> Bool {
            view.storage == other.storage && (view.storage.isOwned
                ? view.offset.constant == other.offset.constant : view.slot == other.slot && view.offset == other.offset)
        }

        var integers: [Int] {
            view.storage.isOwned ? [view.offset.constant] : [view.slot, view.offset.constant, view.offset.perToken]
        }
    }

    /// A stage's members cut into families (`AffineFamilies.stage`): the same
    /// step text once their operands are named by position, every operand's
    /// integers affine in the member's (block, lane). A token buffer's slot is
    /// one of them only where the kernel has all slots of its storage
    /// (`slotCount`, a table to pick from); otherwise it stays in the text.
    /// `operands[i]`: member i's operands, in the order its text first names them.
    private func stageFamilies(_ stage: [Contraction], _ lowered: [Lowered], rows: String, slotCount: [Storage: Int],
                               place: (TensorView) -> String)
        -> (blockSize: Int, families: [StageFamily], operands: [[StageOperand]]) {
        let members = stage.indices.map { i -> (shape: String, operands: [StageOperand]) in
            var operands: [StageOperand] = []
            let text = step(stage[i], lowered[i], rows: rows, threads: "threads") { view in
                let k = operands.firstIndex { $0.names(view) } ?? {
                    let start = operands.last?.components.upperBound ?? 0
                    let operand = StageOperand(view: view, components: start..<start + (view.storage.isOwned ? 1 : 3))
                    operands.append(operand)
                    return operands.count - 1
                }()
                if view.storage.isOwned { return "⟨\(view.storage.rawValue) \(k)⟩" }
                let stride = rows == "n" ? 0 : view.tokenRowStride
                let slot = slotCount[view.storage] == nil ? " slot \(view.slot)" : ""
                return "⟨\(view.storage.rawValue) \(k) row \(stride)\(slot)⟩"
            }
            return (text.joined(separator: "\n"), operands)
        }
        let integers = members.map { $0.operands.flatMap(\.integers) }
        let (blockSize, families) = AffineFamilies.stage(count: stage.count, key: { members[$0].shape }, offsets: { integers[$0] })
        // Families of one shape merge into one case: each integer affine over all their members
        // where it is, else read from a table indexed by the member (0 for members of other shapes),
        // where the tables it adds are shorter than the case it saves (about 6 characters an entry).
        var merged: [StageFamily] = []
        for family in families {
            let shape = members[family.members[0]].shape
            guard let k = merged.firstIndex(where: { members[$0.members[0]].shape == shape }) else {
                merged.append(StageFamily(members: family.members, offsets: family.offsets, tables: [:]))
                continue
            }
            let all = (merged[k].members + family.members).sorted()
            var result = StageFamily(members: all, offsets: [], tables: [:])
            for c in integers[all[0]].indices {
                let values = all.map { [integers[$0][c]] }
                if let fit = AffineFamilies.fit(indices: all.map { [$0 / blockSize, $0 % blockSize] }, offsets: values) {
                    result.offsets.append(fit[0])
                } else if let fit = AffineFamilies.fit(indices: all.map { [0, $0] }, offsets: values) {
                    // Affine in plain i = R·(i / R) + i % R (members that share neither index).
                    result.offsets.append(AffineOffset(base: fit[0].base, strides: [fit[0].strides[1] * blockSize, fit[0].strides[1]]))
                } else {
                    result.offsets.append(AffineOffset(base: values[0][0], strides: [0, 0]))
                    var table = [Int?](repeating: nil, count: stage.count)
                    for (m, v) in zip(all, values) { table[m] = v[0] }
                    result.tables[c] = table
                }
            }
            let added = (result.tables.count - merged[k].tables.count) * stage.count * 6
            if added < shape.count { merged[k] = result } else { merged.append(StageFamily(members: family.members, offsets: family.offsets, tables: [:])) }
        }
        return (blockSize, merged, members.map(\.operands))
    }

    /// Members of a stage run as one case: `offsets[c]`, affine in (i / R, i % R), gives
    /// integer c of every member, except where `tables[c]` holds it by member index (nil: not a member).
    struct StageFamily {
        var members: [Int]
        var offsets: [AffineOffset]
        var tables: [Int: [Int?]]
    }

    /// The kernel that runs `call` (of a program that maps token rows
    /// independently) on `RowBlocks`: it hands each block its rows of x and of
    /// every output (`widths`: row width of each token buffer, by storage and
    /// slot) and its own workspace. Emitted once per kernel and widths, so a
    /// pair's case in the dispatch is a plain call rather than a closure of its own.
    mutating func rowBlocks(for program: Program, _ call: Call, widths: (Storage, Int) -> Int) -> String {
        let tokens = KernelEmitter.tokenArguments(program).filter { $0.storage != .workspace }
        let workspace = program.workspaceExtent
        var parameters = ["_ n: Int"] + tokens.map { "_ \($0.name): Floats" }
        parameters += call.pointers.indices.map { "_ p\($0): Floats" }
        parameters += ["storage: AdapterStorage", "threads: Int"]
        let blockArguments = ["n"] + KernelEmitter.tokenArguments(program).map { arg in
            switch arg.storage {
            case .workspace: return "w"
            case .input, .output: return "\(arg.name) + first * \(widths(arg.storage, arg.slot))"
            default: return arg.name
            }
        } + call.pointers.indices.map { "p\($0)" }
        let body = [
            "RowBlocks.run(rows: n, rowWork: \(program.flops.perToken), workspacePerRow: \(workspace.perToken), "
                + "workspaceFixed: \(workspace.constant), storage: storage, threads: threads) { n, first, w, threads in",
            "    Self.\(call.kernel)(\(blockArguments.joined(separator: ", ")), threads: threads)",
            "}",
        ]
        let signature = parameters.joined(separator: ", ")
        let key = "rows " + signature + "\n" + body.joined(separator: "\n")
        if let name = kernelByBody[key] { return name }
        // One kernel under several widths (not seen so far, but possible) gets a wrapper for each.
        let earlier = kernelByBody.values.filter { $0.hasPrefix("\(call.kernel)Rows") }.count
        let name = "\(call.kernel)Rows" + (earlier == 0 ? "" : "\(earlier + 1)")
        kernelByBody[key] = name
        var text = ["    private static func \(name)(\(signature)) {"]
        text += body.map { "        " + $0 }
        text.append("    }")
        kernels.append(text.joined(separator: "\n"))
        return name
    }

    /// The Swift statements of one step (`lowered`: how it lowers); sizes that grow with the
    /// token count are in `rows` (the kernel's `n`, or a row block's `rows`).
    private func step(_ c: Contraction, _ lowered: Lowered, rows: String, threads: String, pointer: (TensorView) -> String) -> [String] {
        switch KernelStep(lowered) {
        case .loops(let g):
            return inlineProduct(g, alpha: c.alpha, accumulate: c.accumulate, a: pointer(g.left), b: pointer(g.right), out: pointer(g.output))
        case .panel(let g, let product):
            let (a, b, out) = (pointer(g.left), pointer(g.right), pointer(g.output))
            return [panelCall(product, g, rows: rows, alpha: c.alpha, accumulate: c.accumulate, a: a, b: b, out: out, threads: threads)]
        case .gemm(let g):
            let (a, b, out) = (pointer(g.left), pointer(g.right), pointer(g.output))
            let args = "transA: \(g.transLeft), transB: \(g.transRight), m: \(swift(g.m, n: rows)), n: \(swift(g.n, n: rows)), k: \(swift(g.k, n: rows)), "
                + "alpha: \(literal(c.alpha)), a: \(a), lda: \(swift(g.lda)), b: \(b), ldb: \(swift(g.ldb)), "
                + "beta: \(c.accumulate ? "1" : "0"), c: \(out), ldc: \(swift(g.ldc)), threads: \(threads))"
            if g.loops.isEmpty { return ["Kernels.gemm(" + args] }
            return ["Kernels.loopedGemm(loops: " + loopLiterals(g.loops, rows: rows) + ", " + args]
        case .elementwise(let e, inline: false):
            // Large fixed-size copies (prepare's panel copies) call the runtime's loop.
            let a = pointer(e.a), out = pointer(e.output), b = e.b.map(pointer)
            return ["Kernels.elementwise(dims: " + loopLiterals(e.dims, rows: rows) + ", alpha: \(literal(c.alpha)), "
                    + "accumulate: \(c.accumulate), a: \(a), b: \(b ?? "nil"), out: \(out))"]
        case .elementwise(let e, inline: true):
            let a = pointer(e.a), out = pointer(e.output), b = e.b.map(pointer)
            return nestedLoops(e.dims, variable: "i", rows: rows) { indent, offsets in
                func index(_ terms: [String]) -> String { terms.isEmpty ? "0" : terms.joined(separator: " + ") }
                let scale = c.alpha == 1 ? "" : "\(literal(c.alpha)) * "
                let value = scale + "\(a)[\(index(offsets.left))]" + (b.map { " * \($0)[\(index(offsets.right))]" } ?? "")
                let target = "\(out)[\(index(offsets.output))]"
                return [indent + (c.accumulate ? "\(target) += \(value)" : "\(target) = \(value)")]
            }
        case .map, .rowNorm, .rowScale:
            return KernelEmitter.vectorStatements(KernelStep(lowered), rows: rows, threads: threads, pointer: pointer)
        }
    }

    /// `[Kernels.Loop(…), …]`: a step's loops as the runtime takes them (`reduces` said where true).
    private func loopLiterals(_ dims: [LoopDim], rows: String) -> String {
        "[" + dims.map {
            "Kernels.Loop(extent: \(swift($0.extent, n: rows)), left: \(swift($0.left)), right: \(swift($0.right)), "
                + "output: \(swift($0.output))" + ($0.reduces ? ", reduces: true)" : ")")
        }.joined(separator: ", ") + "]"
    }

    /// The kernel call of a panel product, arguments mapped as `Kernels.panelProduct` maps them
    /// (B's strides spelled out when it is read in place, not packed).
    private func panelCall(_ product: PanelProduct, _ g: GEMMStep, rows: String, alpha: Float, accumulate: Bool, a: String, b: String,
                           out: String, threads: String) -> String {
        func swift(_ e: Extent) -> String { AdaptcCore.swift(e, n: rows) }
        let common = "alpha: \(literal(alpha))"
        let beta = "beta: \(accumulate ? "1" : "0")"
        let (panelStride, innerStride) = product.strides
        switch product {
        case .multiply(let panels, _, _):
            let strides = product.isPacked ? "" : "panelStride: \(swift(panelStride)), kStride: \(swift(innerStride)), "
            return "Kernels.panelGemm(transA: \(g.transLeft), m: \(swift(g.m)), panels: \(swift(panels)), k: \(swift(g.k)), \(common), "
                + "a: \(a), lda: \(swift(g.lda)), b: \(b), \(strides)\(beta), c: \(out), ldc: \(swift(g.ldc)), threads: \(threads))"
        case .dot(let panels, let transposed, _, _):
            let (m, k, dy, ld, packed, cRow, cRank) = transposed
                ? (g.n, g.m, b, g.ldb, a, Extent(1), g.ldc) : (g.m, g.n, a, g.lda, b, g.ldc, Extent(1))
            let strides = product.isPacked ? "" : "panelStride: \(swift(panelStride)), rankStride: \(swift(innerStride)), "
            return "Kernels.panelDot(m: \(swift(m)), panels: \(swift(panels)), k: \(swift(k)), \(common), a: \(dy), lda: \(swift(ld)), "
                + "packed: \(packed), \(strides)\(beta), c: \(out), cRow: \(swift(cRow)), cRank: \(swift(cRank)), threads: \(threads))"
        }
    }

    /// `for` loops over `dims` (outermost first, variables `\(variable)0`, …)
    /// around `body`, which gets the indentation and, per operand, the offset
    /// terms of the loop variables (none where the stride is 0).
    private func nestedLoops(_ dims: [LoopDim], variable: String, rows: String = "n",
                             body: (_ indent: String, _ offsets: (left: [String], right: [String], output: [String])) -> [String]) -> [String] {
        var lines: [String] = []
        var indent = ""
        var offsets = (left: [String](), right: [String](), output: [String]())
        for (d, dim) in dims.enumerated() {
            lines.append(indent + "for \(variable)\(d) in 0..<\(swift(dim.extent, n: rows)) {")
            indent += "    "
            if dim.left != Extent(0) { offsets.left.append("\(variable)\(d) * \(swift(dim.left))") }
            if dim.right != Extent(0) { offsets.right.append("\(variable)\(d) * \(swift(dim.right))") }
            if dim.output != Extent(0) { offsets.output.append("\(variable)\(d) * \(swift(dim.output))") }
        }
        lines += body(indent, offsets)
        for d in stride(from: dims.count - 1, through: 0, by: -1) {
            lines.append(String(repeating: "    ", count: d) + "}")
        }
        return lines
    }

    /// A small fixed-size product as loops: `C[i, j] (+)= alpha·Σ_p op(A)[i, p]·op(B)[p, j]`,
    /// repeated over the step's (independent) loops.
    private func inlineProduct(_ g: GEMMStep, alpha: Float, accumulate: Bool, a: String, b: String, out: String) -> [String] {
        nestedLoops(g.loops, variable: "l") { indent, offsets in
            let lda = g.lda.constant, ldb = g.ldb.constant, ldc = g.ldc.constant
            let aIndex = g.transLeft ? "p * \(lda) + i" : "i * \(lda) + p"
            let bIndex = g.transRight ? "j * \(ldb) + p" : "p * \(ldb) + j"
            func shifted(_ base: String, _ terms: [String]) -> String { terms.isEmpty ? base : "(\(base) + \(terms.joined(separator: " + ")))" }
            let (pa, pb, pc) = (shifted(a, offsets.left), shifted(b, offsets.right), shifted(out, offsets.output))
            let scaled = alpha == 1 ? "sum" : "\(literal(alpha)) * sum"
            return [
                indent + "for i in 0..<\(g.m.constant) {",
                indent + "    for j in 0..<\(g.n.constant) {",
                indent + "        var sum: Float = 0",
                indent + "        for p in 0..<\(g.k.constant) { sum += \(pa)[\(aIndex)] * \(pb)[\(bIndex)] }",
                indent + "        \(pc)[i * \(ldc) + j] \(accumulate ? "+=" : "=") \(scaled)",
                indent + "    }",
                indent + "}",
            ]
        }
    }
}

/// A stage member's description with the index that tells it from its
/// siblings written `*` — a tensor's slice `t2[3]`, a split part `.part2`, a
/// token slot `y1` — so the members of one family read as one entry with their
/// count (`runs`), as they run as one case.
func memberPattern(_ description: String) -> String {
    description.replacing(/\[\d+\]/, with: "[*]").replacing(/\.part\d+/, with: ".part*")
        .replacing(/(^|[^A-Za-z0-9_.])y\d+\[/) { "\($0.1)y*[" }
}

/// A stage's member descriptions for its comment: neighbours of one pattern
/// (`memberPattern`) said once with their count, a member alone as it is.
func memberRuns(_ descriptions: [String]) -> [String] {
    var result: [(pattern: String, first: String, count: Int)] = []
    for d in descriptions {
        let pattern = memberPattern(d)
        if result.last?.pattern == pattern { result[result.count - 1].count += 1 } else { result.append((pattern, d, 1)) }
    }
    return result.map { $0.count == 1 ? $0.first : "\($0.pattern) (×\($0.count))" }
}

/// A Swift expression for an extent in the kernel's `n` (or another token count).
func swift(_ e: Extent, n: String = "n") -> String {
    switch (e.constant, e.perToken) {
    case (let c, 0): return String(c)
    case (0, 1): return n
    case (0, let p): return "\(p) * \(n)"
    case (let c, 1): return "\(n) + \(c)"
    case (let c, let p): return "\(p) * \(n) + \(c)"
    }
}

/// A Float literal that reads back to the same value (Swift prints the shortest
/// round-tripping form).
func literal(_ x: Float) -> String {
    let text = "\(x)"
    return text.contains(".") || text.contains("e") ? text : text + ".0"
}

/// `constant + Σ stride·name` as a Swift Int expression (zero terms left out).
func affine(constant: Int, terms: [(stride: Int, name: String)]) -> String {
    let nonzero = terms.filter { $0.stride != 0 }
    var parts = nonzero.map { $0.stride == 1 ? $0.name : $0.stride == -1 ? "-\($0.name)" : "\($0.stride) * \($0.name)" }
    // `4 - i` rather than `-i + 4`: the constant leads where the first term is negative.
    if constant != 0 && (nonzero.first?.stride ?? 0) < 0 { parts.insert(String(constant), at: 0) }
    else if constant != 0 || parts.isEmpty { parts.append(String(constant)) }
    return parts.joined(separator: " + ").replacingOccurrences(of: "+ -", with: "- ")
}

extension KernelEmitter {
    /// The call of a `.map`, `.rowNorm` or `.rowScale` kernel: the runtime's
    /// `Kernels` function with the arguments `StepRunner.vector` passes, sizes
    /// that grow with the token count in `rows`, strides in `n` — so the
    /// generated code and the interpreter run the same arithmetic in the same order.
    static func vectorStatements(_ kernel: KernelStep, rows: String, threads: String, pointer: (TensorView) -> String) -> [String] {
        func size(_ e: Extent) -> String { swift(e, n: rows) }
        func stride(_ e: Extent) -> String { swift(e) }
        switch kernel {
        case .map(let s):
            let (x, y) = s.geometry
            return ["Kernels.map(\(mapOp(s.op)), rows: \(size(x.rows)), columns: \(size(x.columns)), x: \(pointer(s.input)), "
                    + "xRow: \(stride(x.rowStride)), xColumn: \(stride(x.columnStride)), y: \(pointer(s.output)), "
                    + "yRow: \(stride(y.rowStride)), yColumn: \(stride(y.columnStride)), accumulate: \(s.accumulate))"]
        case .rowNorm(let s):
            let (x, y) = s.geometry
            return ["Kernels.rowNorm(rows: \(size(x.rows)), columns: \(size(x.columns)), x: \(pointer(s.input)), "
                    + "xRow: \(stride(x.rowStride)), xColumn: \(stride(x.columnStride)), y: \(pointer(s.output)), yRow: \(stride(y.rowStride)))"]
        case .rowScale(let s):
            let g = s.geometry
            return ["Kernels.rowScale(rows: \(size(g.a.rows)), columns: \(size(g.a.columns)), alpha: \(literal(s.alpha)), a: \(pointer(s.a)), "
                    + "aRow: \(stride(g.a.rowStride)), aColumn: \(stride(g.a.columnStride)), "
                    + "scale: \(s.scale.map(pointer) ?? "nil"), scaleStride: \(g.scale.map(stride) ?? "0"), "
                    + "divisor: \(s.divisor.map(pointer) ?? "nil"), divisorStride: \(g.divisor.map(stride) ?? "0"), "
                    + "out: \(pointer(s.output)), outRow: \(stride(g.output.rowStride)), outColumn: \(stride(g.output.columnStride)), "
                    + "accumulate: \(s.accumulate), threads: \(threads))"]
        default:
            preconditionFailure("not a vector kernel: \(kernel)")
        }
    }

    /// `MapOp` as Swift source.
    static func mapOp(_ op: MapOp) -> String {
        switch op {
        case .scale(let alpha): return ".scale(\(literal(alpha)))"
        case .square: return ".square"
        case .reciprocal: return ".reciprocal"
        case .rsqrt: return ".rsqrt"
        }
    }
}
