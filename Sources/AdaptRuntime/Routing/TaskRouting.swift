/// The rows of one call of a group with tasks, grouped by task (DESIGN §2
/// "Tasks"): each token row is multiplied by its own task's ΔW, so a call runs
/// the group's program once per task present (its views moved by the task,
/// `TensorView.taskStride`), on that task's rows only — never once per row.
///
/// Rows whose tasks already form one contiguous run each (sorted ids, or all
/// rows one task) are used in place: the program runs on each run's rows where
/// they are. Otherwise the rows are gathered by task (a stable counting sort:
/// within a task, rows keep their order) into scratch once per call, the
/// program runs on each task's block there, and the rows it accumulates into
/// are scattered back. Either way a task's rows are one block, so a mixed
/// call gives each task what a call with only its rows gives (bit for bit for
/// forward; gradients sum the same rows in the same order).
///
/// A row whose task has no slice in this group (the group lists a subset of
/// `model.tasks`) gets nothing from it: its ΔW there is zero.
public struct TaskRouting: Sendable {
    /// The rows of one task: `count` rows from `first`, in the caller's
    /// buffers (in place) or in the gathered ones.
    public struct Run: Sendable, Equatable {
        /// The task's position in the group's task mode.
        public let slot: Int
        public let first: Int
        public let count: Int
    }

    /// In row order when in place, in slot order when gathered.
    public let runs: [Run]
    /// Gathered row j is the caller's row `order[j]`; nil when the runs are used in place.
    public let order: [Int]?

    /// Routes `rows` rows with one model task id each. `slots[t]` is model
    /// task t's position in the group's task mode, or nil where the group has
    /// no slice for it. Throws `AdapterError.unknownTask` for an id outside
    /// `0..<slots.count`, naming the row.
    public init(spec: String, tasks: UnsafePointer<Int32>, rows: Int, slots: [Int?]) throws {
        var slotOfRow = [Int](repeating: -1, count: rows)
        for row in 0..<rows {
            let task = Int(tasks[row])
            guard task >= 0 && task < slots.count else {
                throw AdapterError.unknownTask(spec: spec, task: task, row: row, taskCount: slots.count)
            }
            slotOfRow[row] = slots[task] ?? -1
        }
        // Runs in row order; in place when no slot appears in two of them.
        var runs: [Run] = []
        var seen = Set<Int>()
        var inPlace = true
        var row = 0
        while row < rows {
            let slot = slotOfRow[row]
            var end = row + 1
            while end < rows && slotOfRow[end] == slot { end += 1 }
            if slot >= 0 {
                if !seen.insert(slot).inserted { inPlace = false }
                runs.append(Run(slot: slot, first: row, count: end - row))
            }
            row = end
        }
        if inPlace {
            self.runs = runs
            order = nil
            return
        }
        // Counting sort by slot, stable.
        let slotCount = (slotOfRow.max() ?? -1) + 1
        var counts = [Int](repeating: 0, count: slotCount)
        for slot in slotOfRow where slot >= 0 { counts[slot] += 1 }
        var starts = [Int](repeating: 0, count: slotCount)
        var total = 0
        var gathered: [Run] = []
        for slot in 0..<slotCount {
            starts[slot] = total
            if counts[slot] > 0 { gathered.append(Run(slot: slot, first: total, count: counts[slot])) }
            total += counts[slot]
        }
        var order = [Int](repeating: 0, count: total)
        for (row, slot) in slotOfRow.enumerated() where slot >= 0 {
            order[starts[slot]] = row
            starts[slot] += 1
        }
        self.runs = gathered
        self.order = order
    }

    /// Routes a call whose rows are all model task `task` (`task:`).
    public init(spec: String, task: Int, rows: Int, slots: [Int?]) throws {
        guard task >= 0 && task < slots.count else {
            throw AdapterError.unknownTask(spec: spec, task: task, row: nil, taskCount: slots.count)
        }
        runs = rows > 0 ? slots[task].map { [Run(slot: $0, first: 0, count: rows)] } ?? [] : []
        order = nil
    }

    /// A caller's token buffer: its first element and row width.
    public struct Rows {
        public let base: UnsafeMutablePointer<Float>
        public let width: Int

        public init(_ base: UnsafeMutablePointer<Float>, width: Int) {
            self.base = base
            self.width = width
        }

        public init(_ base: UnsafePointer<Float>, width: Int) {
            self.init(UnsafeMutablePointer(mutating: base), width: width)
        }
    }

    /// Runs `body(slot, rows, read, written)` once per run, each buffer at
    /// the run's first row. `read` buffers are only read; `written` ones are
    /// read and written (`+=`). Gathered runs use `scratch(floats)` (the
    /// storage's routing scratch), and the written rows go back afterwards.
    public func each(reading read: [Rows], writing written: [Rows], scratch: (Int) -> UnsafeMutablePointer<Float>,
                     _ body: (_ slot: Int, _ rows: Int, _ read: [UnsafePointer<Float>], _ written: [UnsafeMutablePointer<Float>]) throws -> Void)
        rethrows {
        guard let order else {
            for run in runs {
                try body(run.slot, run.count, read.map { UnsafePointer($0.base + run.first * $0.width) },
                         written.map { $0.base + run.first * $0.width })
            }
            return
        }
        let rows = order.count
        let widths = (read + written).map(\.width)
        let space = scratch(rows * widths.reduce(0, +))
        var blocks: [UnsafeMutablePointer<Float>] = []
        var next = space
        for width in widths {
            blocks.append(next)
            next += rows * width
        }
        for (buffer, block) in zip(read + written, blocks) {
            for (j, row) in order.enumerated() {
                (block + j * buffer.width).update(from: buffer.base + row * buffer.width, count: buffer.width)
            }
        }
        let readBlocks = blocks.prefix(read.count).map { UnsafePointer($0) }
        let writtenBlocks = Array(blocks.suffix(written.count))
        for run in runs {
            try body(run.slot, run.count, zip(readBlocks, read).map { $0 + run.first * $1.width },
                     zip(writtenBlocks, written).map { $0 + run.first * $1.width })
        }
        for (buffer, block) in zip(written, writtenBlocks) {
            for (j, row) in order.enumerated() {
                (buffer.base + row * buffer.width).update(from: block + j * buffer.width, count: buffer.width)
            }
        }
    }
}
