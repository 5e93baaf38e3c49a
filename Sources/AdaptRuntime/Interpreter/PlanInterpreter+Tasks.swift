/// The calls of a plan whose groups have tasks (DESIGN §2 "Tasks", §6): the
/// same forward, layer forward, backward, layer backward and materialize,
/// with one model task id per token row (`tasks:`, a mixed batch) or one for
/// all rows (`task:`). Rows are grouped by task (`TaskRouting`) and each
/// task's rows run the pair's program with its views moved to the task's
/// slice (`TensorView.taskStride`). A pair of a group without tasks ignores
/// the ids: it is the same for every task.
extension PlanInterpreter {
    /// Which task each row is: every row one task, or one id per row.
    public enum Tasks {
        case all(Int)
        case perRow(UnsafeBufferPointer<Int32>)
    }

    /// Names of the model's tasks; a task id indexes this list.
    public var taskNames: [String] { plan.tasks }

    /// `y += x·ΔW[task(row), layer, module]ᵀ` per row.
    public func forward(layer: Int, module: String, x: UnsafeBufferPointer<Float>, rows n: Int,
                        y: UnsafeMutableBufferPointer<Float>, tasks: Tasks) throws {
        let pair = try self.pair(layer, module)
        try expect(x.count, n * pair.inFeatures, "x", pair)
        try expect(y.count, n * pair.outFeatures, "y", pair)
        let routing = try route(pair, tasks, rows: n)
        ensurePrepared()
        let program = pairPrograms[pair.key]!.forward
        try routing.each(reading: [.init(x.baseAddress!, width: pair.inFeatures)],
                         writing: [.init(y.baseAddress!, width: pair.outFeatures)], scratch: storage.routingScratch) { slot, rows, read, written in
            runRows(program, rows: rows, Bindings(input: [UnsafeBufferPointer(start: read[0], count: rows * pair.inFeatures)],
                                                  output: [UnsafeMutableBufferPointer(start: written[0], count: rows * pair.outFeatures)]),
                    inWidth: pair.inFeatures, outWidths: [pair.outFeatures], task: slot)
        }
    }

    /// The fused forward of several modules of `layer` that read one `x`, per row's task.
    public func forwardLayer(layer: Int, modules: [String], x: UnsafeBufferPointer<Float>, rows n: Int,
                             outputs: [UnsafeMutableBufferPointer<Float>], tasks: Tasks) throws {
        let pairs = try layerPairs(layer: layer, modules: modules, x: x.count, rows: n, perModule: outputs.map(\.count),
                                   name: "y", allowTasks: true)
        guard let fused = layerForwards[LayerKey(layer: layer, modules: modules)] else {
            for (pair, y) in zip(pairs, outputs) { try forward(layer: layer, module: pair.module, x: x, rows: n, y: y, tasks: tasks) }
            return
        }
        let routing = try route(pairs[0], tasks, rows: n)
        ensurePrepared()
        let widths = pairs.map(\.outFeatures)
        try routing.each(reading: [.init(x.baseAddress!, width: pairs[0].inFeatures)],
                         writing: zip(outputs, widths).map { .init($0.0.baseAddress!, width: $0.1) },
                         scratch: storage.routingScratch) { slot, rows, read, written in
            let bindings = Bindings(input: [UnsafeBufferPointer(start: read[0], count: rows * pairs[0].inFeatures)],
                                    output: zip(written, widths).map { UnsafeMutableBufferPointer(start: $0.0, count: rows * $0.1) })
            runRows(fused, rows: rows, bindings, inWidth: pairs[0].inFeatures, outWidths: widths, task: slot)
        }
    }

    /// VJP per row's task: `dx += dy·ΔW[task(row)]`; each task's parameter gradients accumulate in its slice.
    public func backward(layer: Int, module: String, x: UnsafeBufferPointer<Float>, dy: UnsafeBufferPointer<Float>,
                         rows n: Int, dx: UnsafeMutableBufferPointer<Float>, tasks: Tasks) throws {
        let pair = try self.pair(layer, module)
        try expect(x.count, n * pair.inFeatures, "x", pair)
        try expect(dy.count, n * pair.outFeatures, "dy", pair)
        try expect(dx.count, n * pair.inFeatures, "dx", pair)
        let routing = try route(pair, tasks, rows: n)
        ensurePrepared()
        let program = pairPrograms[pair.key]!.backward
        try routing.each(reading: [.init(x.baseAddress!, width: pair.inFeatures), .init(dy.baseAddress!, width: pair.outFeatures)],
                         writing: [.init(dx.baseAddress!, width: pair.inFeatures)], scratch: storage.routingScratch) { slot, rows, read, written in
            run(program, rows: rows, Bindings(input: [UnsafeBufferPointer(start: read[0], count: rows * pair.inFeatures)],
                                              inputGradient: [UnsafeMutableBufferPointer(start: written[0], count: rows * pair.inFeatures)],
                                              outputGradient: [UnsafeBufferPointer(start: read[1], count: rows * pair.outFeatures)]),
                task: slot)
        }
    }

    /// The fused backward of several modules of `layer`, per row's task.
    public func backwardLayer(layer: Int, modules: [String], x: UnsafeBufferPointer<Float>, dys: [UnsafeBufferPointer<Float>],
                              rows n: Int, dx: UnsafeMutableBufferPointer<Float>, tasks: Tasks) throws {
        let pairs = try layerPairs(layer: layer, modules: modules, x: x.count, rows: n, perModule: dys.map(\.count),
                                   name: "dy", allowTasks: true)
        for pair in pairs { try expect(dx.count, n * pair.inFeatures, "dx", pair) }
        guard let fused = layerBackwards[LayerKey(layer: layer, modules: modules)] else {
            for (pair, dy) in zip(pairs, dys) {
                try backward(layer: layer, module: pair.module, x: x, dy: dy, rows: n, dx: dx, tasks: tasks)
            }
            return
        }
        let routing = try route(pairs[0], tasks, rows: n)
        ensurePrepared()
        let inWidth = pairs[0].inFeatures, widths = pairs.map(\.outFeatures)
        try routing.each(reading: [.init(x.baseAddress!, width: inWidth)] + zip(dys, widths).map { .init($0.0.baseAddress!, width: $0.1) },
                         writing: [.init(dx.baseAddress!, width: inWidth)], scratch: storage.routingScratch) { slot, rows, read, written in
            let bindings = Bindings(input: [UnsafeBufferPointer(start: read[0], count: rows * inWidth)],
                                    inputGradient: [UnsafeMutableBufferPointer(start: written[0], count: rows * inWidth)],
                                    outputGradient: zip(read.dropFirst(), widths).map { UnsafeBufferPointer(start: $0.0, count: rows * $0.1) })
            run(fused, rows: rows, bindings, task: slot)
        }
    }

    /// `ΔW[task, layer, module]` `[out, in]`, scale included (zero where the
    /// pair's group has no slice for the task).
    public func materialize(layer: Int, module: String, task: Int, into delta: UnsafeMutableBufferPointer<Float>) throws {
        let pair = try self.pair(layer, module)
        try expect(delta.count, pair.outFeatures * pair.inFeatures, "ΔW", pair)
        let routing = try route(pair, .all(task), rows: 1)
        ensurePrepared()
        delta.update(repeating: 0)
        guard let slot = routing.runs.first?.slot else { return }
        run(pairPrograms[pair.key]!.materialize, rows: 0, Bindings(delta: delta), task: slot)
    }

    /// `W += ΔW[task]` in place (`unmerge`: `W −= ΔW[task]`), as `merge(layer:module:into:)`.
    public func merge(layer: Int, module: String, task: Int, into weight: UnsafeMutableBufferPointer<Float>, unmerge: Bool = false,
                      transposed: Bool = false) throws {
        let pair = try self.pair(layer, module)
        try expect(weight.count, pair.outFeatures * pair.inFeatures, "W", pair)
        var delta = [Float](repeating: 0, count: weight.count)
        try delta.withUnsafeMutableBufferPointer { try materialize(layer: layer, module: module, task: task, into: $0) }
        delta.withUnsafeBufferPointer {
            MergeArithmetic.add($0, rows: pair.outFeatures, columns: pair.inFeatures, to: weight,
                                sign: unmerge ? -1 : 1, transposed: transposed)
        }
    }

    // MARK: - Routing

    /// Throws `AdapterError.taskRequired` when `pair`'s group has tasks (a call without a task id).
    func refuseTasks(_ pair: PairPlan) throws {
        let group = plan.groups[groupOfPair[pair.key]!]
        if !group.tasks.isEmpty { throw AdapterError.taskRequired(spec: plan.specName, group: group.name) }
    }

    /// The rows of a call grouped by task for `pair`'s group; a group without
    /// tasks takes every row as its one slot, whatever the ids (which must still be valid).
    private func route(_ pair: PairPlan, _ tasks: Tasks, rows n: Int) throws -> TaskRouting {
        let slots = taskSlots[groupOfPair[pair.key]!]
        switch tasks {
        case .all(let task):
            return try TaskRouting(spec: plan.specName, task: task, rows: n, slots: slots)
        case .perRow(let ids):
            guard ids.count == n else {
                throw AdapterError.shapeMismatch(spec: plan.specName, argument: "tasks of \(pair.key)", count: ids.count, expected: n)
            }
            guard n > 0 else { return try TaskRouting(spec: plan.specName, task: 0, rows: 0, slots: slots.isEmpty ? [nil] : slots) }
            return try TaskRouting(spec: plan.specName, tasks: ids.baseAddress!, rows: n, slots: slots)
        }
    }
}
