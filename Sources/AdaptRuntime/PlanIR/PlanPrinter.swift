extension Plan: CustomStringConvertible {
    /// The readable form `adaptc plan` prints: one block per group, the chosen
    /// path, then each program as numbered stages of contractions, every view
    /// with its extents, strides, buffer and offset (`layoutDescription`), so
    /// two different plans never print the same.
    public var description: String {
        var lines = ["plan \(specName): \(parameterCount) parameters, workspace \(workspace) floats"]
        for group in groups {
            lines.append("group \(group.name) (\(group.structure)), \(group.pairs.count) pairs")
            for step in group.path { lines.append("  path: \(step)") }
            if !group.prepare.isEmpty { lines.append(contentsOf: render(group.prepare, "prepare")) }
            if !group.finishBackward.isEmpty { lines.append(contentsOf: render(group.finishBackward, "finishBackward")) }
            for pair in group.pairs {
                lines.append("  pair \(pair.key): [\(pair.outFeatures), \(pair.inFeatures)] rank \(pair.rank) scale \(pair.scale)")
                lines.append(contentsOf: render(pair.forward, "forward"))
                lines.append(contentsOf: render(pair.backward, "backward"))
                lines.append(contentsOf: render(pair.materialize, "materialize"))
            }
            for fused in group.layerForwards {
                lines.append("  layer \(fused.layer) forward of \(fused.modules.joined(separator: ", ")) (one input):")
                lines.append(contentsOf: render(fused.program, "forward"))
            }
            for fused in group.layerBackwards {
                lines.append("  layer \(fused.layer) backward of \(fused.modules.joined(separator: ", ")) (one input):")
                lines.append(contentsOf: render(fused.program, "backward"))
            }
        }
        return lines.joined(separator: "\n")
    }

    private func render(_ program: Program, _ name: String) -> [String] {
        var lines = ["    \(name):"]
        for (s, stage) in program.stages.enumerated() {
            if s == 0 && program.rowLocalStages > 0 { lines.append("      on row blocks:") }
            if s == program.rowLocalStages && s > 0 { lines.append("      on all rows:") }
            for c in stage { lines.append("      \(s + 1). \(c.layoutDescription)") }
        }
        return lines
    }
}

extension TensorView {
    /// Every field of the view, so two different views never print the same:
    /// `z[n:n/24, r:8/1]@workspace+16` is modes with extent/stride, the buffer
    /// (`.slot` when not 0) and the offset. (`description`, the short form
    /// `z[n, r]`, is what the generated code's comments show.)
    public var layoutDescription: String {
        let modes = zip(modes, zip(extents, strides)).map { "\($0):\($1.0)/\($1.1)" }.joined(separator: ", ")
        return "\(name)[\(modes)]@\(storage.rawValue)\(slot == 0 ? "" : ".\(slot)")+\(offset)"
            + (taskStride == 0 ? "" : "+task·\(taskStride)")
    }
}

extension Contraction {
    /// `description` with each view's `layoutDescription`: one-to-one.
    public var layoutDescription: String {
        describe(\.layoutDescription)
    }
}
