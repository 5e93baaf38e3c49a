/// A misuse of an adapter's API that the caller can fix: wrong shapes, unknown
/// pairs, a file for another spec, missing tensors. Thrown, never trapped on
/// (DESIGN §6).
///
/// Each case carries the values a caller needs to react (`switch` on it);
/// ``message`` (also ``description``) is the one line a tool prints, and is
/// what `adaptc` shows after `adaptc: error:`.
public enum AdapterError: Error, CustomStringConvertible, Sendable, Equatable {
    /// An argument buffer of `spec`'s adapter has `count` elements where the
    /// shapes ask for `expected` (`argument`: `x`, `y`, `dy`, `dx`, `ΔW`, `W`, …).
    case shapeMismatch(spec: String, argument: String, count: Int, expected: Int)
    /// No group of `spec` covers this (layer, module) pair.
    case unknownPair(spec: String, layer: Int, module: String)
    /// A layer forward got `modules` modules but `outputs` output buffers.
    case outputCountMismatch(spec: String, modules: Int, outputs: Int)
    /// The file at `path` has no `adaptc.hash` in its metadata (a PEFT file,
    /// say: `adaptc import-peft` converts it).
    case missingSpecHash(path: String)
    /// The file at `path` was written for another spec: its `adaptc.hash` is
    /// `fileHash`, while `spec` expects `specHash`.
    case otherSpec(path: String, fileHash: String, spec: String, specHash: String)
    /// The file at `path` lacks the tensor `key` of shape `shape`.
    case missingTensor(path: String, key: String, shape: [Int])
    /// The file at `path` holds `key` with shape `shape` where `expected` was asked for.
    case tensorShapeMismatch(path: String, key: String, shape: [Int], expected: [Int])
    /// An optimizer was handed `count` parameters or gradients where it was built for `expected`.
    case parameterCountMismatch(count: Int, expected: Int)
    /// A gradient is NaN or infinite (`key`: the parameter tensor holding it,
    /// `index`: its position in `gradients`).
    case nonFiniteGradient(key: String, index: Int)
    /// A parameter is NaN or infinite, so the adapter cannot be saved
    /// (readers refuse such files, DESIGN §5).
    case nonFiniteParameter(key: String, index: Int)
    /// The preconditioned step could not invert the damped r×r Gram matrix of
    /// the factor `key` (rank-deficient factor with `damping` too small).
    case singularGram(key: String, damping: Double)
    /// A call's task id `task` (row `row` of `tasks:`, or nil for `task:`) is
    /// not one of the spec's `taskCount` tasks (DESIGN §2 "Tasks").
    case unknownTask(spec: String, task: Int, row: Int?, taskCount: Int)
    /// A call without a task on a spec whose group `group` has tasks: it needs `task:` or `tasks:`.
    case taskRequired(spec: String, group: String)
    /// Anything else, as one line.
    case other(String)

    /// An error that is only a message (``other(_:)``).
    public init(_ message: String) { self = .other(message) }

    /// One line for a person: what is wrong and, where there is one, the fix.
    public var message: String {
        switch self {
        case let .shapeMismatch(spec, argument, count, expected):
            return "\(spec): \(argument) has \(count) elements, expected \(expected)"
        case let .unknownPair(spec, layer, module):
            return "\(spec): no adapter for layer \(layer) module \(module)"
        case let .outputCountMismatch(spec, modules, outputs):
            return "\(spec): \(modules) modules but \(outputs) outputs"
        case let .missingSpecHash(path):
            return "\(path): not an adaptc adapter file (no adaptc.hash in its metadata); for a PEFT adapter run `adaptc import-peft` first"
        case let .otherSpec(path, fileHash, spec, specHash):
            return "\(path): written for a different spec (adaptc.hash \(fileHash), \(spec) expects \(specHash)); re-create it with `adaptc init`, or use the spec (and generated code) it was made for"
        case let .missingTensor(path, key, shape):
            return "\(path): missing tensor \"\(key)\" (expected shape \(shape))"
        case let .tensorShapeMismatch(path, key, shape, expected):
            return "\(path): tensor \"\(key)\" has shape \(shape), expected \(expected)"
        case let .parameterCountMismatch(count, expected):
            return "optimizer: got \(count) parameters or gradients, expected \(expected)"
        case let .nonFiniteGradient(key, index):
            return "gradient of \"\(key)\" is NaN or infinite (index \(index) of gradients); nothing was updated"
        case let .nonFiniteParameter(key, index):
            return "parameter \"\(key)\" is NaN or infinite (index \(index) of parameters); not saved"
        case let .singularGram(key, damping):
            return "preconditioned step: the Gram matrix of \"\(key)\" is singular with damping \(damping); use a damping > 0"
        case let .unknownTask(spec, task, row, taskCount):
            return "\(spec): task id \(task)\(row.map { " (row \($0) of tasks)" } ?? "") is not one of its \(taskCount) tasks (0..<\(taskCount))"
        case let .taskRequired(spec, group):
            return "\(spec): group \(group) has tasks: pass task: or tasks: (one id per row)"
        case let .other(message):
            return message
        }
    }

    /// The message.
    public var description: String { message }
}
