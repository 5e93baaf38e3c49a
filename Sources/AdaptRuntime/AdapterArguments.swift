/// Argument checks every generated adapter makes before it runs a kernel, kept
/// here so generated files hold only what is specific to their spec. A wrong
/// argument throws `AdapterError`; it never traps (DESIGN §6).
public enum AdapterArguments {
    /// The pair's index in the generated dispatch, from its table
    /// `pairIndex[layer * moduleCount + module]` (−1 where no group covers it).
    @inline(__always)
    public static func pair<A: GeneratedAdapter>(_ table: [Int], layer: Int, module: A.Module, layerCount: Int,
                                                 of adapter: A.Type) throws -> Int {
        let modules = A.Module.allCases.count
        let index = layer >= 0 && layer < layerCount ? table[layer * modules + module.rawValue] : -1
        guard index >= 0 else {
            throw AdapterError.unknownPair(spec: A.specName, layer: layer, module: A.moduleName(module))
        }
        return index
    }

    /// Throws ``AdapterError/shapeMismatch(spec:argument:count:expected:)`` when `count` ≠ `expected`.
    @inline(__always)
    public static func expect<A: GeneratedAdapter>(_ count: Int, _ expected: Int, _ what: String, of adapter: A.Type) throws {
        if count != expected {
            throw AdapterError.shapeMismatch(spec: A.specName, argument: what, count: count, expected: expected)
        }
    }

    /// The arguments of a fused layer forward: one output per module, each pair
    /// covered, `x` `[n, in]` and every output `[n, out]`.
    public static func layerForward<A: GeneratedAdapter>(_ table: [Int], layer: Int, modules: [A.Module], layerCount: Int,
                                                         x: Int, rows n: Int, outputs: [Int], of adapter: A.Type) throws {
        guard modules.count == outputs.count else {
            throw AdapterError.outputCountMismatch(spec: A.specName, modules: modules.count, outputs: outputs.count)
        }
        for (module, y) in zip(modules, outputs) {
            _ = try pair(table, layer: layer, module: module, layerCount: layerCount, of: A.self)
            let shape = A.shape(of: module)
            try expect(x, n * shape.in, "x", of: A.self)
            try expect(y, n * shape.out, "y", of: A.self)
        }
    }
}
