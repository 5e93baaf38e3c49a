import AdaptRuntime

/// Adapter weight files in the adaptc layout (DESIGN §5): metadata naming the
/// spec and its hash, refused when the hash is missing or differs.
public enum AdapterFiles {
    public static func metadata(_ checked: CheckedSpec) -> [String: String] {
        ["adaptc.spec": checked.spec.name, "adaptc.version": SwiftEmitter.adaptcVersion, "adaptc.hash": SpecHash.hash(checked)]
    }

    /// Opens an adapter file and loads it into an interpreter for the plan.
    public static func load(_ path: String, checked: CheckedSpec, plan: Plan, threads: Int) throws -> PlanInterpreter {
        let file = try SafetensorsFile.read(path: path)
        try file.requireSpec(checked.spec.path, hash: SpecHash.hash(checked))
        try MemoryBudget.require(floats: 2 * plan.parameterCount, for: "the adapter's parameters and gradients")
        let interpreter = PlanInterpreter(plan: plan, threads: threads)
        try interpreter.storage.load(file, layout: plan.parameters)
        interpreter.prepare()
        return interpreter
    }
}
