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
        let expected = SpecHash.hash(checked)
        guard let hash = file.metadata["adaptc.hash"] else {
            throw UserError("\(path): not an adaptc adapter file (no adaptc.hash in its metadata); for a PEFT adapter run `adaptc import-peft` first")
        }
        guard hash == expected else {
            throw UserError("\(path): written for a different spec (adaptc.hash \(hash), \(checked.spec.path) has \(expected)); re-create it with `adaptc init` or use the spec it was made for")
        }
        try MemoryBudget.require(floats: 2 * plan.parameterCount, for: "the adapter's parameters and gradients")
        let interpreter = PlanInterpreter(plan: plan, threads: threads)
        try interpreter.storage.load(file, layout: plan.parameters)
        interpreter.prepare()
        return interpreter
    }
}
