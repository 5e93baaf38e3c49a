/// The rules on tasks and on what learns (DESIGN §2 "Tasks", §3 `train:`):
/// `model.tasks` names tasks, a group's `tasks:` picks some of them (and gains
/// the mode `task`), and `train:` names modes the group has.
enum TaskRules {
    /// `model.tasks`: lower_snake_case names (they become weight-key parts and
    /// generated identifiers), each once, at least one when the key is given.
    static func checkModelTasks(_ spec: AdapterSpec, _ diagnostics: inout DiagnosticCollector) {
        let tasks = spec.model.tasks
        if tasks.isEmpty, let at = spec.keyLocations["model.tasks"] {
            diagnostics.error("'model.tasks' lists no tasks; name at least one, or leave the key out", at: at)
        }
        for (i, task) in tasks.enumerated() {
            let at = spec.keyLocations["model.tasks[\(i)]"] ?? spec.keyLocations["model.tasks"] ?? spec.model.location
            if tasks[..<i].contains(task) {
                diagnostics.error("task '\(task)' is listed twice in 'model.tasks'", at: at)
            } else if SwiftIdentifier.isKeyword(task) {
                diagnostics.error("task name '\(task)' is a Swift keyword; pick another name", at: at)
            } else if !SwiftIdentifier.isLowerSnakeCase(task) {
                var message = "task name '\(task)' must be lower_snake_case (lowercase ASCII letters and digits "
                    + "in words joined by '_', starting with a letter)"
                let fixed = GroupRules.snakeCase(task)
                if fixed != task, SwiftIdentifier.isLowerSnakeCase(fixed) { message += "; did you mean '\(fixed)'?" }
                diagnostics.error(message, at: at)
            }
        }
    }

    /// The group's tasks: nil without `tasks:`, else the tasks it names, in
    /// `model.tasks` order for `all` and as listed otherwise (the valid ones,
    /// after reporting the rest).
    static func resolveTasks(_ group: AdapterGroup, model: ModelSpec,
                             _ diagnostics: inout DiagnosticCollector) -> [String]? {
        guard let selection = group.tasks else { return nil }
        switch selection {
        case .all:
            if model.tasks.isEmpty {
                diagnostics.error("group '\(group.name)' has 'tasks: all', but the model names no tasks "
                                  + "(add 'tasks: [NAME, …]' under 'model')", at: group.location(of: "tasks"))
            }
            return model.tasks
        case .listed(let names):
            if names.isEmpty {
                diagnostics.error("'tasks' lists no tasks; write 'all', a list of tasks from 'model.tasks', "
                                  + "or leave the key out", at: group.location(of: "tasks"))
            }
            var tasks: [String] = []
            for (i, name) in names.enumerated() {
                let at = group.location(of: "tasks[\(i)]")
                guard model.tasks.contains(name) else {
                    let known = model.tasks.isEmpty
                        ? " (the model names no tasks: add 'tasks: [NAME, …]' under 'model')"
                        : DidYouMean.suggestion(for: name, among: model.tasks).map { "; did you mean '\($0)'?" }
                            ?? " (the model's tasks are \(model.tasks.joined(separator: ", ")))"
                    diagnostics.error("unknown task '\(name)'\(known)", at: at)
                    continue
                }
                guard !tasks.contains(name) else {
                    diagnostics.error("task '\(name)' is listed twice in group '\(group.name)'", at: at)
                    continue
                }
                tasks.append(name)
            }
            return tasks
        }
    }

    /// `train:` names modes the group has, each once, at least one. A stacked
    /// group has the modes of its delta tensor (size-1 ones included; `out`/`in`
    /// stand for all their factors); a lora group has `layer`, `module`, `out`
    /// (its B), `in` (its A) and, with tasks, `task`.
    /// - Parameter modes: the stacked group's modes; nil for lora, or when they did not resolve.
    static func checkTrain(_ group: AdapterGroup, modes: ModeResolution.Modes?, hasTasks: Bool,
                           _ diagnostics: inout DiagnosticCollector) {
        guard let train = group.train else { return }
        if train.isEmpty {
            diagnostics.error("'train' lists no modes; leave it out to train every tensor", at: group.location(of: "train"))
            return
        }
        let available: [ModeName]
        if group.structure.stacksModules {
            guard let modes else { return }  // the reason was reported
            let names = modes.all.map(\.name)
            let wholeSides = [ModeName.out, .in].filter { side in names.contains { $0.kind == side.kind } }
            available = names + wholeSides.filter { !names.contains($0) }
        } else {
            available = [.layer, .module, .out, .in] + (hasTasks ? [.task] : [])
        }
        for (i, mode) in train.enumerated() {
            let at = group.location(of: "train[\(i)]")
            if train[..<i].contains(mode) {
                diagnostics.error("mode '\(mode)' is listed twice in 'train'", at: at)
            } else if !available.contains(mode) {
                let why = mode.kind == .task ? " (it has no tasks)" : ""
                diagnostics.error("'train' names mode '\(mode)', which group '\(group.name)' does not have\(why) "
                                  + "(its modes: \(available.map(\.description).joined(separator: ", ")))", at: at)
            }
        }
    }
}
