import AdaptRuntime

/// DoRA's magnitude at init (DESIGN §5): `m = ‖W‖_row`, each output row's norm
/// of the base weight, so that at B = 0 the pair computes W' = W (and after
/// pissa/milora/olora, whose base becomes W − s·B·A, V = W again). A row of
/// norm zero is refused: DoRA divides by ‖W + s·B·A‖_row.
enum DoRAInit {
    static func magnitudes(_ group: ResolvedGroup, plan: Plan, base: BaseCheckpoint?, specPath: String,
                           checked: CheckedSpec, into storage: AdapterStorage) throws {
        guard let base else {
            throw UserError("\(specPath): group '\(group.name)' is DoRA: init sets its magnitude m = ‖W‖_row from the base weights, so it needs --base")
        }
        let template = try WeightKeyTemplate(checked, for: "DoRA's init (m = ‖W‖_row)")
        guard let pairs = plan.groups.first(where: { $0.name == group.name })?.pairs else { return }
        for pair in pairs {
            guard let magnitude = pair.dora?.magnitude else { continue }
            let key = template.key(pair)
            let weight = try base.weight(key, for: pair, template: template)
            let target = storage.parameters.baseAddress! + magnitude.offset
            for o in 0..<pair.outFeatures {
                var sum = 0.0
                for i in 0..<pair.inFeatures { let w = Double(weight[o * pair.inFeatures + i]); sum += w * w }
                guard sum > 0 else {
                    throw UserError("\(base.path): tensor \"\(key)\": row \(o) has norm zero, and DoRA divides by ‖W + s·B·A‖_row; drop 'dora' from group '\(group.name)' or leave this module out")
                }
                target[o] = Float(sum.squareRoot())
            }
        }
    }
}
