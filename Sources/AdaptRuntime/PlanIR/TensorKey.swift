/// The name of one stored tensor, typed (DESIGN §5 "Adapter weight keys"):
/// which group it belongs to and what it is there — a lora pair's A or B, a
/// DoRA magnitude, a tensor-train core, a CP or Tucker factor, the Tucker
/// core. This file is the one place that renders keys and reads them back;
/// the planner, init, the pruner, PEFT/GGUF interop and the runtime accessors
/// name tensors through it rather than by joining strings.
///
/// Module names may contain dots (PEFT paths such as `attention.self.query`),
/// so a key is read with its group's structure at hand (`init?(parsing:structure:)`).
public struct TensorKey: Hashable, Sendable, CustomStringConvertible {
    /// Where a lora tensor sits: one (layer, module) pair, or a module's adapter
    /// shared by all the group's layers (`GROUP.shared.MODULE.A`).
    public enum Block: Hashable, Sendable {
        case layer(Int)
        case shared

        var label: String {
            switch self {
            case .layer(let l): return String(l)
            case .shared: return "shared"
            }
        }
    }

    public enum Role: Hashable, Sendable {
        /// A lora pair's `A` `[r, in]`.
        case loraA(Block, module: String)
        /// A lora pair's `B` `[out, r]`.
        case loraB(Block, module: String)
        /// A DoRA pair's magnitude vector `m` `[out]`.
        case magnitude(layer: Int, module: String)
        /// Tensor-train core K `[r_{K−1}, n_K, r_K]` (K: position in the group's order).
        case core(Int)
        /// The Tucker core (`GROUP.core`).
        case tuckerCore
        /// A CP or Tucker factor `[n, R]` of the named mode (`GROUP.factor.MODE`).
        case factor(mode: String)
    }

    public var group: String
    /// The task of a lora tensor of a group with tasks (DESIGN §5: the task
    /// follows the group, `GROUP.TASK.LAYER.MODULE.A`); nil otherwise. Tensor
    /// groups keep their core keys: their task mode is one more mode of a core
    /// or factor.
    public var task: String?
    public var role: Role

    public init(group: String, task: String? = nil, role: Role) {
        self.group = group
        self.task = task
        self.role = role
    }

    public static func loraA(_ group: String, _ block: Block, _ module: String, task: String? = nil) -> TensorKey {
        TensorKey(group: group, task: task, role: .loraA(block, module: module))
    }

    public static func loraB(_ group: String, _ block: Block, _ module: String, task: String? = nil) -> TensorKey {
        TensorKey(group: group, task: task, role: .loraB(block, module: module))
    }

    /// This key for another task (the same tensor of `task`'s slice).
    public func forTask(_ task: String?) -> TensorKey {
        var key = self
        key.task = task
        return key
    }

    /// The key as stored in adapter files and `parameterLayout`.
    public var description: String {
        let group = task.map { "\(self.group).\($0)" } ?? self.group
        switch role {
        case let .loraA(block, module): return "\(group).\(block.label).\(module).A"
        case let .loraB(block, module): return "\(group).\(block.label).\(module).B"
        case let .magnitude(layer, module): return "\(group).\(layer).\(module).magnitude"
        case let .core(k): return "\(group).core.\(k)"
        case .tuckerCore: return "\(group).core"
        case let .factor(mode): return "\(group).factor.\(mode)"
        }
    }

    /// The pair key `LAYER.MODULE` of a per-layer lora tensor or magnitude; nil otherwise.
    public var pair: String? {
        switch role {
        case let .loraA(.layer(l), module), let .loraB(.layer(l), module), let .magnitude(l, module): return "\(l).\(module)"
        default: return nil
        }
    }

    /// The layer of a per-layer lora tensor or magnitude; nil otherwise (a shared
    /// lora tensor, or a core or factor, which spans the group's layers as a mode).
    public var layer: Int? {
        switch role {
        case .loraA(.layer(let l), _), .loraB(.layer(let l), _), .magnitude(let l, _): return l
        default: return nil
        }
    }

    /// The module of a lora tensor or magnitude; nil for a core or factor.
    public var module: String? {
        switch role {
        case let .loraA(_, module), let .loraB(_, module), let .magnitude(_, module): return module
        default: return nil
        }
    }

    /// Reads a key back without its group's structure. The forms do not overlap
    /// (a lora key's second part is a layer or `shared`, a core's `core`, a
    /// factor's `factor`; the module takes the rest), so the only thing left
    /// open is whether `GROUP.factor.MODE` is CP's or Tucker's, and its role is
    /// the same either way. nil when `key` is no adapter key.
    public init?(parsing key: String) {
        // Tucker's forms hold CP's.
        for structure in ["lora", "tensor-train", "tucker"] {
            if let parsed = TensorKey(parsing: key, structure: structure) {
                self = parsed
                return
            }
        }
        return nil
    }

    /// Reads a key back; nil when it is not a key of a group of `structure`
    /// (`lora`, `tensor-train`, `cp`, `tucker`, as `GroupPlan.structure` spells them).
    /// - Parameters:
    ///   - key: A stored tensor's key.
    ///   - structure: The structure of the group the key should belong to.
    public init?(parsing key: String, structure: String) {
        var parts = key.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        guard parts.count >= 2, !parts[0].isEmpty else { return nil }
        let group = parts[0]
        switch structure {
        case "lora":
            // `GROUP.TASK.BLOCK.MODULE.A`: a task is neither a layer number nor
            // `shared`, and a block follows it.
            func isBlock(_ part: String) -> Bool { part == "shared" || Int(part).map { $0 >= 0 && String($0) == part } == true }
            var task: String? = nil
            if parts.count >= 5, !parts[1].isEmpty, !isBlock(parts[1]), isBlock(parts[2]) {
                task = parts.remove(at: 1)
            }
            guard parts.count >= 4, let last = parts.last else { return nil }
            let module = parts[2..<(parts.count - 1)].joined(separator: ".")
            guard !module.isEmpty else { return nil }
            let block: Block
            if parts[1] == "shared" {
                block = .shared
            } else if let l = Int(parts[1]), l >= 0, String(l) == parts[1] {
                block = .layer(l)
            } else {
                return nil
            }
            switch (last, block) {
            case ("A", _): self.init(group: group, task: task, role: .loraA(block, module: module))
            case ("B", _): self.init(group: group, task: task, role: .loraB(block, module: module))
            case ("magnitude", .layer(let l)): self.init(group: group, task: task, role: .magnitude(layer: l, module: module))
            default: return nil
            }
        case "tensor-train":
            guard parts.count == 3, parts[1] == "core", let k = Int(parts[2]), k >= 0, String(k) == parts[2] else { return nil }
            self.init(group: group, role: .core(k))
        case "cp", "tucker":
            if structure == "tucker" && parts.count == 2 && parts[1] == "core" {
                self.init(group: group, role: .tuckerCore)
            } else if parts.count >= 3 && parts[1] == "factor" {
                self.init(group: group, role: .factor(mode: parts[2...].joined(separator: ".")))
            } else {
                return nil
            }
        default:
            return nil
        }
    }
}
