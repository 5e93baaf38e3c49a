/// The pruned spec as text: the user's file edited in place, line by line, so
/// names, keys, order and comments survive (DESIGN §4). Only what pruning
/// changes is rewritten — a group's `layers:` (dropped layers), its
/// `overrides:` (pruned ranks), a shared group's `rank:` — and each new
/// `GROUP_shared` group is inserted right after its source group; every
/// rewritten value carries a comment saying where it came from.
///
/// Locations come from the parsed spec, so this needs the adapters in block
/// style (`- name: …` items); the caller re-checks the result and compares it
/// with the decisions, so any other layout is an error, never a wrong spec.
public enum PrunedSpecText {
    public static func edit(source: String, checked: CheckedSpec, result: PruneResult) -> String {
        var lines = source.components(separatedBy: "\n")
        var edits: [Edit] = []
        let starts = checked.spec.groups.map(\.location.line)
        let sectionEnd = adaptersEnd(checked.spec, lineCount: lines.count)
        for (index, group) in checked.groups.enumerated() {
            guard let pruning = result.groups.first(where: { $0.name == group.name }), pruning.pruned else { continue }
            let blockEnd = trimmedEnd(lines, from: starts[index], to: index + 1 < starts.count ? starts[index + 1] : sectionEnd)
            let column = group.group.location.column
            let indent = String(repeating: " ", count: max(column - 1, 0))
            let block = Block(start: starts[index], end: blockEnd, column: column)

            if let rank = pruning.sharedRank, let at = group.group.keyLocations["rank"] {
                let kept = result.settings.scope == .pair ? "each module keeps" : "the group keeps"
                let comment = "LoRA-drop rank level: was \(group.effectiveRank); \(kept) ≥ \(percent(result.settings.threshold)) of its output energy"
                edits.append(replace(at, in: lines, block: block, with: ["rank: \(rank)  # \(comment)"], indent: indent))
            }
            if !pruning.droppedLayers.isEmpty {
                let share = pruning.layerShares.filter { pruning.keptLayers.contains($0.layer) }.reduce(0) { $0 + $1.share }
                let line = "layers: [\(pruning.keptLayers.map(String.init).joined(separator: ", "))]  # LoRA-drop: kept \(pruning.keptLayers.count) of "
                    + "\(pruning.layerShares.count) layers (\(percent(share)) of the group's output energy); layers "
                    + "\(pruning.droppedLayers.map(String.init).joined(separator: ", ")) → \(pruning.sharedGroupName!)"
                if let at = group.group.keyLocations["layers"] {
                    edits.append(replace(at, in: lines, block: block, with: [line], indent: indent))
                } else {
                    edits.append(insert(after: group.group.keyLocations["name"] ?? group.group.location, in: lines, block: block,
                                        lines: [indent + line]))
                }
            }
            let pruner = group.structure.pruner
            if let ranks = pruner.rankLines(group, pruning, result.settings) {
                if let at = group.group.keyLocations["ranks"] ?? group.group.keyLocations["rank"] {
                    edits.append(replace(at, in: lines, block: block, with: ranks, indent: indent))
                } else {
                    edits.append(insert(after: group.group.keyLocations["name"] ?? group.group.location, in: lines, block: block,
                                        lines: ranks.map { indent + $0 }))
                }
            }
            if let overrides = pruner.overrideLines(group, pruning, result.settings) {
                if let at = group.group.keyLocations["overrides"] {
                    edits.append(replace(at, in: lines, block: block, with: overrides, indent: indent))
                } else if !overrides.isEmpty {
                    edits.append(insert(after: group.group.keyLocations["rank"] ?? group.group.location, in: lines, block: block,
                                        lines: overrides.map { indent + $0 }))
                }
            }
            if let name = pruning.sharedGroupName {
                edits.append(Edit(start: blockEnd, end: blockEnd, lines: sharedGroupLines(name, group, pruning, indent: indent)))
            }
        }
        // Last line first, so earlier positions stay valid; edits at one position
        // end up in the order they were made (the new shared group after its source's keys).
        let ordered = edits.enumerated().sorted { ($0.element.start, $0.element.end, $0.offset) > ($1.element.start, $1.element.end, $1.offset) }
        for (_, edit) in ordered {
            lines.replaceSubrange((edit.start - 1)..<(edit.end - 1), with: edit.lines)
        }
        return lines.joined(separator: "\n")
    }

    /// Replace lines `start..<end` (1-based) with `lines`.
    struct Edit {
        var start: Int
        var end: Int
        var lines: [String]
    }

    /// One group's lines `start..<end` (1-based) and the column of its keys.
    struct Block {
        var start: Int
        var end: Int
        var column: Int
    }

    static func sharedGroupLines(_ name: String, _ group: ResolvedGroup, _ pruning: GroupPruning, indent: String) -> [String] {
        let dropped = pruning.droppedLayers.map(String.init).joined(separator: ", ")
        let share = pruning.layerShares.filter { pruning.droppedLayers.contains($0.layer) }.reduce(0) { $0 + $1.share }
        let dash = String(indent.dropLast(2))
        var lines = [
            "\(dash)# \(name): LoRA-drop gave layers \(dropped) of '\(group.name)' (\(percent(share)) of its output energy)",
            "\(dash)# one adapter per module, the rank-\(group.effectiveRank) SVD of their mean ΔW.",
            "\(dash)- name: \(name)",
            "\(indent)structure: lora",
            "\(indent)layers: [\(dropped)]",
            "\(indent)modules: [\(group.group.modules.joined(separator: ", "))]",
            "\(indent)shared: true",
            "\(indent)rank: \(group.effectiveRank)",
        ]
        if let alpha = group.group.alpha { lines.append("\(indent)alpha: \(number(alpha))") }
        if group.group.scaling != .standard { lines.append("\(indent)scaling: \(group.group.scaling.rawValue)") }
        if let train = sharedTrain(group) { lines.append("\(indent)\(train)") }
        return lines
    }

    /// The shared group's `train:` line, nil when all of it learns. Its A learns
    /// when the source trains anything on the input side or across it (an `in`
    /// factor, the layer, the module: a lora A carries all three), its B when
    /// the source trains an `out` factor, the layer or the module; so frozen
    /// factors stay frozen in the LoRA that takes over their layers.
    static func sharedTrain(_ group: ResolvedGroup) -> String? {
        guard let train = group.group.train else { return nil }
        let across: Set<ModeName.Kind> = [.layer, .module, .task]
        let a = train.contains { across.contains($0.kind) || $0.kind == .in }
        let b = train.contains { across.contains($0.kind) || $0.kind == .out }
        let written = train.map(\.description).joined(separator: ", ")
        switch (a, b) {
        case (true, false): return "train: [in]  # from '\(group.name)' (train: [\(written)]): only A learns"
        case (false, true): return "train: [out]  # from '\(group.name)' (train: [\(written)]): only B learns"
        default: return nil
        }
    }

    /// Replaces the entry of the key at `at` (its line and every following line
    /// indented deeper, blank lines inside) with `replacement`: the first line
    /// keeps what stood before the key (`- ` of a first key), the others get `indent`.
    static func replace(_ at: SourceLocation, in lines: [String], block: Block, with replacement: [String], indent: String) -> Edit {
        let end = entryEnd(at, in: lines, block: block)
        let prefix = String(Array(lines[at.line - 1]).prefix(at.column - 1))
        let body = replacement.enumerated().map { i, text in (i == 0 ? prefix : indent) + text }
        return Edit(start: at.line, end: end, lines: body)
    }

    static func insert(after at: SourceLocation, in lines: [String], block: Block, lines new: [String]) -> Edit {
        let end = entryEnd(at, in: lines, block: block)
        return Edit(start: end, end: end, lines: new)
    }

    /// The first line after the entry of the key at `at` (1-based).
    static func entryEnd(_ at: SourceLocation, in lines: [String], block: Block) -> Int {
        var end = at.line + 1
        while end < block.end {
            let line = lines[end - 1]
            let trimmed = line.drop { $0 == " " }
            if trimmed.isEmpty || line.count - trimmed.count > at.column - 1 { end += 1 } else { break }
        }
        while end > at.line + 1 && lines[end - 2].allSatisfy({ $0 == " " }) { end -= 1 }
        return end
    }

    /// `end` moved back over blank and comment-only lines (they introduce what follows).
    static func trimmedEnd(_ lines: [String], from start: Int, to end: Int) -> Int {
        var end = min(end, lines.count + 1)
        while end > start + 1 {
            let trimmed = lines[end - 2].drop { $0 == " " || $0 == "\t" }
            if trimmed.isEmpty || trimmed.hasPrefix("#") { end -= 1 } else { break }
        }
        return end
    }

    /// The line of the first top-level key after `adapters:`, or past the last line.
    static func adaptersEnd(_ spec: AdapterSpec, lineCount: Int) -> Int {
        let adapters = spec.keyLocations["adapters"]?.line ?? 0
        let next = spec.keyLocations.filter { !$0.key.contains(".") && !$0.key.contains("[") }
            .map(\.value.line).filter { $0 > adapters }.min()
        return next ?? lineCount + 1
    }

    static func percent(_ fraction: Double) -> String {
        String(format: "%.1f%%", 100 * fraction)
    }

    /// A number as YAML: integers without a fraction.
    static func number(_ value: Double) -> String {
        value == value.rounded() && abs(value) < 1e15 ? String(Int(value)) : String(value)
    }
}
