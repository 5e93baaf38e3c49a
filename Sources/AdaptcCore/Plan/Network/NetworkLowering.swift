import AdaptRuntime

/// Turns a contraction path over a network of matrices into Plan IR: one stage
/// per step, intermediates laid out in the workspace, the last step writing the
/// caller's output (with the scale folded into its alpha).
enum NetworkLowering {
    /// - Parameters:
    ///   - bindings: the matrix holding each network tensor (its indices are the tensor's modes).
    ///   - intermediates: names for the intermediate results, in step order (default `t1`, `t2`, …).
    ///   - workspace: the next free workspace offset; advanced past the intermediates.
    /// - Returns: nil when a step is not a matrix product with one summed index
    ///   (networks of higher-order tensors lower through reshapes, not yet here).
    static func lower(_ network: TensorNetwork, path: ContractionPath, bindings: [MatrixView], output: MatrixView,
                      alpha: Float, accumulate: Bool, intermediates: [String] = [], workspace: inout Extent,
                      model: CostModel) -> Program? {
        precondition(bindings.count == network.tensors.count)
        var views = bindings
        var stages: [[Contraction]] = []
        let replay = PathReplay(network, path.steps, model: model)
        for (k, step) in replay.steps.enumerated() {
            let last = k == replay.steps.count - 1
            let result: MatrixView
            if last {
                guard Set(output.indices) == Set(step.resultModes) else { return nil }
                result = output
            } else {
                guard step.resultModes.count == 2 else { return nil }
                let (rowMode, columnMode) = (step.resultModes[0], step.resultModes[1])
                let rows = network.extent(rowMode), columns = network.extent(columnMode)
                result = MatrixView(k < intermediates.count ? intermediates[k] : "t\(k + 1)", in: .workspace,
                                    offset: workspace, indices: (rowMode, columnMode), shape: (rows, columns))
                workspace = workspace + rows * columns
            }
            // The operand holding the result's row index reads first, as in the GEMM it lowers to.
            let (first, second) = views[step.left].indices.contains(result.rowIndex)
                ? (views[step.left], views[step.right]) : (views[step.right], views[step.left])
            let contraction = Contraction(result, first, second, alpha: last ? alpha : 1, accumulate: last && accumulate)
            guard contraction.lowered != nil else { return nil }
            stages.append([contraction])
            views.append(result)
        }
        return Program(stages)
    }

    /// The path in words, e.g. `x[n,i]·A[r,i] → z[n,r]; z[n,r]·B[o,r] → y[n,o]`,
    /// intermediates named as `lower` names them.
    static func describe(_ network: TensorNetwork, path: ContractionPath, intermediates: [String] = [], output: String,
                         model: CostModel) -> String {
        var names = network.tensors.map { "\($0.name)[\($0.modes.joined(separator: ","))]" }
        var parts: [String] = []
        let steps = PathReplay(network, path.steps, model: model).steps
        for (k, step) in steps.enumerated() {
            let name = k == steps.count - 1 ? output : k < intermediates.count ? intermediates[k] : "t\(k + 1)"
            let result = "\(name)[\(step.resultModes.joined(separator: ","))]"
            // The operand holding the result's first mode reads first, as in the lowered GEMM.
            let leftFirst = step.leftModes.contains(step.resultModes.first ?? "")
            let (first, second) = leftFirst ? (names[step.left], names[step.right]) : (names[step.right], names[step.left])
            parts.append("\(first)·\(second) → \(result)")
            names.append(result)
        }
        return parts.joined(separator: "; ")
    }
}
