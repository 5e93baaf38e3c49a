import AdaptRuntime
import Foundation

/// `adaptc import-peft DIR… --tasks NAME…` (DESIGN §5): several PEFT LoRA
/// adapters of one base, each imported as today, become one spec whose lora
/// groups have a task per folder; each folder's factors are stored unchanged
/// under its task's keys (`GROUP.TASK.LAYER.MODULE.A`).
extension PEFTImport {
    public static func loadTasks(folders: [String], tasks: [String], specPath: String, stem: String,
                                 basePath: String?) throws -> Result {
        guard folders.count == tasks.count else {
            throw UserError("--tasks names \(tasks.count) task\(tasks.count == 1 ? "" : "s") for \(folders.count) PEFT folder\(folders.count == 1 ? "" : "s"); give one task per folder, in the same order")
        }
        var seen = Set<String>()
        for task in tasks where !seen.insert(task).inserted {
            throw UserError("--tasks: task '\(task)' is named twice; each folder needs its own task")
        }
        // Each folder on its own: the same spec text means the same base shapes,
        // modules, layers, ranks and scales, so only the factors differ by task.
        var singles: [Result] = []
        for folder in folders {
            let single = try load(folder: folder, specPath: specPath, stem: stem, basePath: basePath)
            if let first = singles.first, first.spec != single.spec {
                throw UserError("\(folder): not the same adapter layout as \(folders[0]) (another base, modules, layers, ranks or scales); --tasks joins adapters of one base with the same modules")
            }
            singles.append(single)
        }
        let spec = taskSpec(singles[0].spec, tasks: tasks)
        let checked = try SpecLoader.check(source: spec, path: specPath)
        let (plan, diagnostics) = Planner.plan(checked)
        guard plan != nil else { throw SpecErrors(SpecLoader.sortedDiagnostics(checked.diagnostics + diagnostics)) }
        var adapter = SafetensorsWriter(metadata: AdapterFiles.metadata(checked))
        for (single, task) in zip(singles, tasks) {
            try adapter.add(renaming: single.adapter) { name in
                guard let key = TensorKey(parsing: name) else { throw UserError("internal error: import wrote an unparsable key \(name)") }
                return key.forTask(task).description
            }
        }
        return Result(spec: spec, checked: checked, adapter: adapter, notes: singles[0].notes)
    }

    /// The single-adapter spec with `model.tasks` and every group taking all tasks.
    static func taskSpec(_ spec: String, tasks: [String]) -> String {
        var lines: [String] = []
        for line in spec.split(separator: "\n", omittingEmptySubsequences: false) {
            lines.append(String(line))
            if line.hasPrefix("  weights: ") { lines.append("  tasks: [\(tasks.joined(separator: ", "))]") }
            if line == "    structure: lora" { lines.append("    tasks: all") }
        }
        return lines.joined(separator: "\n")
    }
}
