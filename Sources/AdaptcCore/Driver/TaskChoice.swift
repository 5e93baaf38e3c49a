import AdaptRuntime

/// `--task NAME` of `eval`, `materialize` and `merge` (DESIGN §2 "Tasks"): a
/// spec with model tasks needs one, since each task is a different ΔW; a spec
/// without tasks has a single ΔW, so a task there is a mistake, not ignored.
enum TaskChoice {
    /// The model task id of `name` in `plan`, nil for a spec without tasks.
    static func resolve(_ name: String?, in plan: Plan, specPath: String, command: String) throws -> Int? {
        guard !plan.tasks.isEmpty else {
            if let name {
                throw UserError("\(specPath): --task '\(name)' given, but the spec has no tasks; drop --task (\(command) has one ΔW per pair)")
            }
            return nil
        }
        let listed = plan.tasks.joined(separator: ", ")
        guard let name else {
            throw UserError("\(specPath): the spec has tasks [\(listed)]; \(command) needs --task NAME to choose one")
        }
        guard let id = plan.tasks.firstIndex(of: name) else {
            throw UserError("\(specPath): unknown task '\(name)' for --task; the spec's tasks are [\(listed)]")
        }
        return id
    }
}
