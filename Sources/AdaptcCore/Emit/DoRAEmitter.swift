import AdaptRuntime

/// What a spec with DoRA groups (DESIGN §5, §6) adds to the generated type:
/// `prepare(base:)` in its two forms, the DoRA steps around the pair entry
/// points (which keep their signatures and call the plain LoRA dispatch, now a
/// private function), and the entry points that take the base:
/// `backward(…baseOutput:dy:…)` and `materialize(…base:into:)`. DoRA's own
/// arithmetic is the runtime's (`DoRAPreparedNorms`, `DoRAPair`), the same the
/// interpreter runs; the generated code holds only the literal layout.
/// Specs without DoRA never reach here, so their files are unchanged.
struct DoRAEmitter {
    let checked: CheckedSpec
    let plan: Plan

    private var access: String { checked.spec.codegen.access == .public ? "public " : "" }

    /// The doc comment's paragraph on DoRA, in the type's header.
    static func typeDocumentation(into file: inout SourceText) {
        file.line("/// DoRA pairs (`dora: true`, DESIGN §5) compute `W' = m ⊙ (W + s·B·A) / ‖W + s·B·A‖_row`")
        file.line("/// and need the base W: `prepare(base:)` computes each pair's row norms from it")
        file.line("/// (about `2·out·in·(r + 1)` flops a pair, on the adapter's threads; W is not kept).")
        file.line("/// Call it after loading and again after every parameter update: taking `parameters`")
        file.line("/// makes the norms stale, and forward and backward of a DoRA pair then throw until it")
        file.line("/// runs again. For a DoRA pair, forward's `y` holds the base output `x·Wᵀ` on entry and")
        file.line("/// DoRA's output `x·W'ᵀ` on return; backward and materialize need the base output or")
        file.line("/// W and have their own forms (`backward(…baseOutput:…)`, `materialize(…base:into:)`).")
        file.line("///")
    }

    /// The stored property holding the DoRA pairs' layout and norms.
    func emitStorage(into file: inout SourceText) {
        let keys = plan.pairs.map { SwiftEmitter.quoted($0.key) }.joined(separator: ", ")
        file.line("    /// DoRA's row norms, by pair index (`prepare(base:)`).")
        file.line("    private let dora = DoRAPreparedNorms(spec: \(SwiftEmitter.quoted(checked.spec.name)), pairKeys: [\(keys)], pairs: [")
        for pair in plan.pairs {
            guard let d = pair.dora else {
                file.line("        nil,")
                continue
            }
            file.line("        DoRAPairLayout(layer: \(pair.layer), module: \(SwiftEmitter.quoted(pair.module)), out: \(pair.outFeatures), "
                      + "in: \(pair.inFeatures), rank: \(pair.rank), scale: \(Float(pair.scale)), a: \(d.a.offset), b: \(d.b.offset), "
                      + "magnitude: \(d.magnitude.offset)),")
        }
        file.line("    ])")
        file.line()
    }

    func emitPrepareBase(into file: inout SourceText) {
        file.line("    /// DoRA: each DoRA pair's row norms `‖W + s·B·A‖` from its base weight W `[out, in]`,")
        file.line("    /// keyed `LAYER.MODULE` (pairs without DoRA are ignored, a key naming no pair throws),")
        file.line("    /// never forming `W + s·B·A`. Run it after loading and after every parameter update.")
        file.line("    \(access)func prepare(base: [String: UnsafePointer<Float>]) throws {")
        file.line("        try dora.prepare(base: base, storage: storage)")
        file.line("    }")
        file.line()
        let model = checked.spec.model
        let transposed = model.weightsLayout == .inOut
        file.line("    /// DoRA: `prepare(base:)` with every DoRA pair's W read from a checkpoint under")
        file.line("    /// `weightKey` (`{layer}`, `{module}` filled in; stored \(transposed ? "`[in, out]`" : "`[out, in]`"), F32, F16 or BF16).")
        file.line("    /// A missing tensor or a wrong shape throws, naming it.")
        let key = model.weightsKey.map { " = " + SwiftEmitter.quoted($0) } ?? ""
        file.line("    \(access)func prepare(base: SafetensorsFile, weightKey: String\(key)) throws {")
        file.line("        try dora.prepare(base: base, weightKey: weightKey, transposed: \(transposed), storage: storage)")
        file.line("    }")
        file.line()
    }

    /// The private LoRA dispatch's header (and, for materialize, its `n`).
    static func privateHeader(_ role: String) -> [String] {
        switch role {
        case "forward":
            return ["/// The pair's LoRA forward, `y += x·ΔWᵀ` (a DoRA pair's forward and backward start with it).",
                    "private func forwardLoRA(_ index: Int, _ layer: Int, _ module: Module, n: Int, x: Floats, y: Floats) {"]
        case "backward":
            return ["/// The pair's LoRA VJP, `dx += dy·ΔW` (a DoRA pair's with its rescaled dy).",
                    "private func backwardLoRA(_ index: Int, _ layer: Int, _ module: Module, n: Int, x: Floats, dy: Floats,",
                    "                          dx: Floats) {"]
        default:
            return ["/// The pair's ΔW = s·B·A (a DoRA pair's materialize starts with it).",
                    "private func materializeLoRA(_ index: Int, _ layer: Int, _ module: Module, delta: Floats) {",
                    "    let n = 0  // ΔW does not depend on token rows"]
        }
    }

    /// A public pair entry point (signature as without DoRA) with DoRA's steps around the private dispatch.
    func emitEntryPoint(_ role: String, header: [String], checks: [String], into file: inout SourceText) {
        let doc: String
        switch role {
        case "forward": doc = "/// For a DoRA pair `y` holds the base output `x·Wᵀ` on entry and DoRA's output `x·W'ᵀ` on return (after `prepare(base:)`)."
        case "backward": doc = "/// A DoRA pair throws: its VJP needs the base output (`backward(layer:module:x:baseOutput:dy:rows:dx:)`)."
        default: doc = "/// A DoRA pair throws: `W' − W` needs W (`materialize(layer:module:base:into:)`)."
        }
        file.line("    " + header[0])
        file.line("    " + doc)
        for h in header.dropFirst() { file.line("    " + h) }
        file.line("        let index = try Self.pair(layer, module)")
        for c in checks where !c.hasPrefix("let n = 0") { file.line("        " + c) }
        switch role {
        case "forward":
            file.line("        try dora.requireNorms(index, storage: storage)")
            file.line("        if n == 0 { return }")
            file.line("        forwardLoRA(index, layer, module, n: n, x: x, y: y)")
            file.line("        dora.rescale(index, y: y, rows: n, storage: storage)")
        case "backward":
            file.line("        try dora.refuse(index, call: \"backward\", needs: \"the base output\", use: \"backward(layer:module:x:baseOutput:dy:rows:dx:)\")")
            file.line("        if n == 0 { return }")
            file.line("        backwardLoRA(index, layer, module, n: n, x: x, dy: dy, dx: dx)")
        default:
            file.line("        try dora.refuse(index, call: \"materialize\", needs: \"the base weight W\", use: \"materialize(layer:module:base:into:)\")")
            file.line("        materializeLoRA(index, layer, module, delta: delta)")
        }
        file.line("    }")
        file.line()
    }

    /// The entry points that take the base: DoRA's backward and materialize.
    func emitBaseEntryPoints(into file: inout SourceText) {
        file.line("    /// DoRA's VJP for one pair, the norm `‖W + s·B·A‖` held constant as PEFT detaches it:")
        file.line("    /// `baseOutput` is `x·Wᵀ` (what forward got in `y`); `dy` (with respect to DoRA's output) is")
        file.line("    /// replaced by the gradient with respect to the base output, `(m/‖W + s·B·A‖) ⊙ dy`, which the")
        file.line("    /// caller's own base backward then takes through W (`dx += dy·W`); `dx +=` the adapter's part")
        file.line("    /// `dy·ΔW`; the gradients of A, B and m accumulate in `gradients`. Pairs without DoRA throw.")
        file.line("    \(access)func backward(layer: Int, module: Module, x: UnsafeBufferPointer<Float>, baseOutput: UnsafeBufferPointer<Float>,")
        file.line("                         dy: UnsafeMutableBufferPointer<Float>, rows n: Int, dx: UnsafeMutableBufferPointer<Float>) throws {")
        file.line("        let index = try Self.pair(layer, module)")
        file.line("        let shape = Self.shape(of: module)")
        file.line("        try Self.expect(x.count, n * shape.in, \"x\")")
        file.line("        try Self.expect(baseOutput.count, n * shape.out, \"baseOutput\")")
        file.line("        try Self.expect(dy.count, n * shape.out, \"dy\")")
        file.line("        try Self.expect(dx.count, n * shape.in, \"dx\")")
        file.line("        try dora.requireDoRA(index, use: \"backward(layer:module:x:dy:rows:dx:)\")")
        file.line("        try dora.requireNorms(index, storage: storage)")
        file.line("        let x = UnsafeMutablePointer(mutating: x.baseAddress), base = baseOutput.baseAddress, dy = dy.baseAddress, dx = dx.baseAddress")
        file.line("        guard let x, let base, let dy, let dx, n > 0 else { return }")
        file.line("        // x·Vᵀ = x·Wᵀ + x·ΔWᵀ, by the pair's LoRA forward, apart from the workspace that forward uses.")
        file.line("        let v = dora.scratch(atLeast: n * shape.out)")
        file.line("        v.update(from: base, count: n * shape.out)")
        file.line("        forwardLoRA(index, layer, module, n: n, x: x, y: v)")
        file.line("        dora.backward(index, xV: v, dy: dy, rows: n, storage: storage)")
        file.line("        backwardLoRA(index, layer, module, n: n, x: x, dy: dy, dx: dx)")
        file.line("    }")
        file.line()
        file.line("    /// `W' − W` `[out, in]` of a DoRA pair (what merge adds to W), from the base `weight` W")
        file.line("    /// `[out, in]` given here (its row norms computed from it; `prepare(base:)` is not needed);")
        file.line("    /// `ΔW` for a pair without DoRA.")
        file.line("    \(access)func materialize(layer: Int, module: Module, base weight: UnsafeBufferPointer<Float>,")
        file.line("                            into delta: UnsafeMutableBufferPointer<Float>) throws {")
        file.line("        let index = try Self.pair(layer, module)")
        file.line("        let shape = Self.shape(of: module)")
        file.line("        try Self.expect(weight.count, shape.out * shape.in, \"W\")")
        file.line("        try Self.expect(delta.count, shape.out * shape.in, \"ΔW\")")
        file.line("        guard let weight = weight.baseAddress, let delta = delta.baseAddress else { return }")
        file.line("        try dora.materialize(index, weight: weight, into: delta, storage: storage) { materializeLoRA(index, layer, module, delta: $0) }")
        file.line("    }")
        file.line()
    }
}
