import AdaptRuntime

/// Turns plan programs into straight-line Swift kernels with literal shapes
/// (FFTW-codelet style). Programs that differ only in where their parameters
/// sit share one kernel: parameter and gradient matrices are passed in as
/// pointers, everything else is a literal.
struct KernelEmitter {
    /// A kernel and how one program calls it.
    struct Call {
        var kernel: String
        /// Parameter/gradient pointer arguments: (storage, offset) in argument order.
        var pointers: [(storage: Storage, offset: Int)]
    }

    private(set) var kernels: [String] = []
    private var kernelByBody: [String: String] = [:]

    /// Token-side argument names in the fixed order every kernel declares them.
    static func tokenArguments(_ program: Program) -> [(name: String, storage: Storage, slot: Int)] {
        var used = Set<String>()
        var result: [(String, Storage, Int)] = []
        let order: [Storage] = [.input, .outputGradient, .output, .inputGradient, .delta, .workspace]
        let views = program.contractions.flatMap { [$0.output, $0.a, $0.b] }
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
        case .outputGradient: return "dy"
        case .output: return slot == 0 ? "y" : "y\(slot)"
        case .inputGradient: return "dx"
        case .delta: return "delta"
        case .workspace: return "w"
        case .parameters, .gradients: return "p"
        }
    }

    /// Emits (or reuses) the kernel for `program`; returns how to call it.
    mutating func kernel(for program: Program, role: String) -> Call {
        var pointers: [(storage: Storage, offset: Int)] = []
        func pointerName(_ view: MatrixView) -> String {
            let key = (view.storage, view.offset.constant)
            if let i = pointers.firstIndex(where: { $0.storage == key.0 && $0.offset == key.1 }) { return "p\(i)" }
            pointers.append(key)
            return "p\(pointers.count - 1)"
        }
        func pointer(_ view: MatrixView) -> String {
            switch view.storage {
            case .parameters, .gradients: return pointerName(view)
            default:
                let base = KernelEmitter.argumentName(view.storage, view.slot)
                return view.offset == Extent(0) ? base : "\(base) + \(swift(view.offset))"
            }
        }
        func call(_ c: Contraction, threads: String) -> String {
            let g = c.lowered!
            return "Kernels.gemm(transA: \(g.transLeft), transB: \(g.transRight), m: \(swift(g.m)), n: \(swift(g.n)), k: \(swift(g.k)), "
                + "alpha: \(literal(c.alpha)), a: \(pointer(g.left)), lda: \(swift(g.left.rowStride)), "
                + "b: \(pointer(g.right)), ldb: \(swift(g.right.rowStride)), beta: \(c.accumulate ? "1" : "0"), "
                + "c: \(pointer(c.output)), ldc: \(swift(c.output.rowStride)), threads: \(threads))"
        }
        var body: [String] = []
        for (s, stage) in program.stages.enumerated() {
            body.append("// stage \(s + 1): " + stage.map(\.description).joined(separator: "; "))
            if stage.count == 1 {
                body.append(call(stage[0], threads: "threads"))
            } else {
                body.append("Kernels.stage(\(stage.count), flops: \(swift(Program([stage]).flops)), threads: threads) { i, threads in")
                body.append("    switch i {")
                for (i, c) in stage.enumerated() {
                    body.append("    \(i == stage.count - 1 ? "default" : "case \(i)"): \(call(c, threads: "threads"))")
                }
                body.append("    }")
                body.append("}")
            }
        }
        var parameters = ["_ n: Int"]
        for arg in KernelEmitter.tokenArguments(program) {
            parameters.append("_ \(arg.name): UnsafeMutablePointer<Float>")
        }
        parameters += pointers.indices.map { "_ p\($0): UnsafeMutablePointer<Float>" }
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
}

/// A Swift expression for an extent in the kernel's `n`.
func swift(_ e: Extent) -> String {
    switch (e.constant, e.perToken) {
    case (let c, 0): return String(c)
    case (0, 1): return "n"
    case (0, let p): return "\(p) * n"
    case (let c, 1): return "n + \(c)"
    case (let c, let p): return "\(p) * n + \(c)"
    }
}

/// A Float literal that reads back to the same value (Swift prints the shortest
/// round-tripping form).
func literal(_ x: Float) -> String {
    let text = "\(x)"
    return text.contains(".") || text.contains("e") ? text : text + ".0"
}
