import AdaptRuntime

/// One public entry point of the generated type, as data (issue 23: entry
/// points as data): its header, the argument checks, the token buffers it
/// binds, the table of kernel calls and what runs where the table has no
/// case. `DispatchEmitter.render` writes every row the same way, so a new
/// entry point (a `task:` form, a base-taking form) is a new row.
struct EntryPoint {
    /// What the table dispatches on.
    enum Table {
        /// The pair a call names: one program per pair, in plan order.
        case pairs([Program])
        /// The layer of a fused call over several modules (empty: no fused programs, only the fallback).
        case layers([LayerForward])
    }

    /// The kernels' role (`forward`, `backward`, `materialize`, `layerForward`, `layerBackward`).
    var role: String
    /// Doc comment and signature, at member indentation.
    var header: [String]
    /// Argument checks and bindings before the buffers, in the body's indentation.
    var checks: [String]
    var table: Table
    /// Bound before the buffers where the table has cases (fused calls: the token pointers).
    var bindings: [String] = []
    /// Names a kernel's token argument in this entry point (fused calls: `ys[i]`, `dys[i]`).
    var token: (KernelEmitter.TokenArgument) -> String = { $0.name }
    /// Runs after the table: modules the table did not fuse, one pair at a time.
    var fallback: [String] = []
}

/// The rows of a plan's public entry points, in the order the file declares them.
struct EntryPoints {
    let plan: Plan
    let access: String
    let hasDoRA: Bool

    var rows: [EntryPoint] {
        var rows = [forward, backward, materialize, layerForward]
        let fusedBackward = plan.groups.flatMap(\.layerBackwards)
        if !fusedBackward.isEmpty { rows.append(layerBackward(fusedBackward)) }
        return rows
    }

    /// Argument checks of a fused call (layer, modules, `x` and the outputs' sizes).
    private func fusedArguments(_ outputs: String) -> [String] {
        ["try AdapterArguments.layerForward(Self.pairIndex, layer: layer, modules: modules, layerCount: Self.layerCount,",
         "                                  x: x.count, rows: n, outputs: \(outputs).map(\\.count), of: Self.self)"]
    }

    private var forward: EntryPoint {
        EntryPoint(role: "forward", header: [
            "/// `y[n, out] += x[n, in]·ΔWᵀ` for one pair.",
            "\(access)func forward(layer: Int, module: Module, x: UnsafeBufferPointer<Float>, rows n: Int,",
            "                    y: UnsafeMutableBufferPointer<Float>) throws {",
        ], checks: [
            "let shape = Self.shape(of: module)",
            "try Self.expect(x.count, n * shape.in, \"x\")",
            "try Self.expect(y.count, n * shape.out, \"y\")",
            "let x = UnsafeMutablePointer(mutating: x.baseAddress), y = y.baseAddress",
            "guard let x, let y else { return }",
        ], table: .pairs(plan.pairs.map(\.forward)))
    }

    private var backward: EntryPoint {
        EntryPoint(role: "backward", header: [
            "/// VJP of forward: `dx[n, in] += dy[n, out]·ΔW`; parameter gradients accumulate in `gradients`"
                + (plan.needsPrepare ? " (those of prepared state once `finishBackward()` runs)." : "."),
            "\(access)func backward(layer: Int, module: Module, x: UnsafeBufferPointer<Float>, dy: UnsafeBufferPointer<Float>,",
            "                     rows n: Int, dx: UnsafeMutableBufferPointer<Float>) throws {",
        ], checks: [
            "let shape = Self.shape(of: module)",
            "try Self.expect(x.count, n * shape.in, \"x\")",
            "try Self.expect(dy.count, n * shape.out, \"dy\")",
            "try Self.expect(dx.count, n * shape.in, \"dx\")",
            "let x = UnsafeMutablePointer(mutating: x.baseAddress), dy = UnsafeMutablePointer(mutating: dy.baseAddress), dx = dx.baseAddress",
            "guard let x, let dy, let dx else { return }",
        ], table: .pairs(plan.pairs.map(\.backward)))
    }

    private var materialize: EntryPoint {
        EntryPoint(role: "materialize", header: [
            "/// `ΔW[out, in]` of one pair, scale included.",
            "\(access)func materialize(layer: Int, module: Module, into delta: UnsafeMutableBufferPointer<Float>) throws {",
        ], checks: [
            "let shape = Self.shape(of: module)",
            "try Self.expect(delta.count, shape.out * shape.in, \"ΔW\")",
            "guard let delta = delta.baseAddress else { return }",
            "let n = 0  // ΔW does not depend on token rows",
        ], table: .pairs(plan.pairs.map(\.materialize)))
    }

    /// Forward of modules that share an input, fused where the plan says so.
    private var layerForward: EntryPoint {
        // Every DoRA pair's norms before any output changes: no half-done layer.
        let dora = hasDoRA ? ["for module in modules { try dora.requireNorms(try Self.pair(layer, module), storage: storage) }"] : []
        return EntryPoint(role: "layerForward", header: [
            "/// Forward of several modules of one layer that read the same `x` (q/k/v):",
            "/// `outputs[i] += x·ΔW[layer, modules[i]]ᵀ`, sharing the input-side products where the plan fused them.",
            "\(access)func forward(layer: Int, modules: [Module], x: UnsafeBufferPointer<Float>, rows n: Int,",
            "                outputs: [UnsafeMutableBufferPointer<Float>]) throws {",
        ], checks: fusedArguments("outputs") + dora + ["if n == 0 { return }"],
        table: .layers(plan.groups.flatMap(\.layerForwards)), bindings: [
            // Checked above: x holds n·in > 0 floats and every output n·out > 0, so base addresses exist.
            "guard let xp = UnsafeMutablePointer(mutating: x.baseAddress) else { return }",
            "let ys = outputs.compactMap(\\.baseAddress)",
            "guard ys.count == outputs.count else { return }",
        ], token: { arg in arg.storage == .output ? "ys[\(arg.slot)]" : arg.storage == .input ? "xp" : arg.name }, fallback: [
            "for (module, y) in zip(modules, outputs) {",
            "    try forward(layer: layer, module: module, x: x, rows: n, y: y)",
            "}",
        ])
    }

    /// The fused backward of modules that share an input, where the plan has one.
    private func layerBackward(_ fused: [LayerForward]) -> EntryPoint {
        EntryPoint(role: "layerBackward", header: [
            "/// VJP of the fused forward: `dx += Σ_i dys[i]·ΔW[layer, modules[i]]`, the input-side work",
            "/// recomputed once for all modules; parameter gradients accumulate in `gradients`.",
            "\(access)func backward(layer: Int, modules: [Module], x: UnsafeBufferPointer<Float>, dys: [UnsafeBufferPointer<Float>],",
            "                 rows n: Int, dx: UnsafeMutableBufferPointer<Float>) throws {",
        ], checks: fusedArguments("dys") + ["try Self.expect(dx.count, x.count, \"dx\")", "if n == 0 { return }"],
        table: .layers(fused), bindings: [
            "guard let xp = UnsafeMutablePointer(mutating: x.baseAddress), let dx = dx.baseAddress else { return }",
            "let dys = dys.compactMap { $0.baseAddress.map(UnsafeMutablePointer.init(mutating:)) }",
            "guard dys.count == modules.count else { return }",
        ], token: { arg in
            switch arg.storage {
            case .outputGradient: return "dys[\(arg.slot)]"
            case .input: return "xp"
            default: return arg.name
            }
        }, fallback: [
            "for (module, dy) in zip(modules, dys) {",
            "    try backward(layer: layer, module: module, x: x, dy: UnsafeBufferPointer(start: dy, count: n * Self.shape(of: module).out),",
            "                 rows: n, dx: UnsafeMutableBufferPointer(start: dx, count: x.count))",
            "}",
        ])
    }
}
