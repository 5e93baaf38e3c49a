import Yams

/// `model: {layers: L, modules: {NAME: [out, in]}, weights: {key: TEMPLATE,
/// layout: out_in | in_out}, inputs: {SET: [MODULE, …]}, tasks: [TASK, …]}`.
enum ModelParser {
    static let keys = ["layers", "modules", "weights", "inputs", "tasks"]
    static let weightsKeys = ["key", "layout"]

    static func parse(_ entry: NodeReader.Entry, reader: inout NodeReader,
                      keyLocations: inout [String: SourceLocation]) -> ModelSpec? {
        guard let entries = reader.mapping(entry.value, at: entry.valueLocation, what: "'model'", prefix: "model.",
                                           allowed: keys, required: ["layers", "modules"]) else { return nil }
        for (key, e) in entries { keyLocations["model.\(key)"] = e.keyLocation }

        let layers = entries["layers"].flatMap { reader.int($0) }
        let modules = entries["modules"].flatMap { parseModules($0, reader: &reader, keyLocations: &keyLocations) }
        var weightsKey: String?
        var weightsLayout = WeightLayout.outIn
        var weightsOK = true
        if let weights = entries["weights"] {
            if let w = reader.mapping(weights.value, at: weights.valueLocation, what: "'model.weights'",
                                      prefix: "model.weights.", allowed: weightsKeys, required: ["key"]) {
                if let key = w["key"] {
                    keyLocations["model.weights.key"] = key.keyLocation
                    weightsKey = reader.string(key)
                    weightsOK = weightsKey != nil
                }
                if let layout = w["layout"] {
                    keyLocations["model.weights.layout"] = layout.keyLocation
                    if let value = reader.choice(layout, as: WeightLayout.self) { weightsLayout = value } else { weightsOK = false }
                }
            } else {
                weightsOK = false
            }
        }
        var inputSets: [InputSet] = []
        var inputsOK = true
        if let inputs = entries["inputs"] {
            if let sets = reader.entries(of: inputs.value, at: inputs.valueLocation, what: "'model.inputs'", prefix: "model.inputs.") {
                for set in sets {
                    keyLocations["model.inputs.\(set.key)"] = set.keyLocation
                    guard let names = reader.stringList(set) else { inputsOK = false; continue }
                    inputSets.append(InputSet(name: set.key, modules: names.map(\.value), locations: names.map(\.location),
                                              location: set.keyLocation))
                }
            } else {
                inputsOK = false
            }
        }
        var tasks: [String] = []
        var tasksOK = true
        if let entry = entries["tasks"] {
            if let names = reader.stringList(entry) {
                tasks = names.map(\.value)
                for (i, name) in names.enumerated() { keyLocations["model.tasks[\(i)]"] = name.location }
            } else {
                tasksOK = false
            }
        }
        guard let layers, let modules, weightsOK, inputsOK, tasksOK else { return nil }
        var model = ModelSpec(layers: layers, modules: modules, weightsKey: weightsKey, weightsLayout: weightsLayout,
                              inputSets: inputSets, location: entry.valueLocation)
        model.tasks = tasks
        return model
    }

    /// `modules: {NAME: [out, in]}` in file order; each module's location is its name.
    private static func parseModules(_ entry: NodeReader.Entry, reader: inout NodeReader,
                                     keyLocations: inout [String: SourceLocation]) -> [ModelModule]? {
        guard let entries = reader.entries(of: entry.value, at: entry.valueLocation, what: "'model.modules'",
                                           prefix: "model.modules.") else { return nil }
        var modules: [ModelModule] = []
        var ok = true
        for module in entries {
            keyLocations["model.modules.\(module.key)"] = module.keyLocation
            guard let shape = reader.intList(module) else { ok = false; continue }
            guard shape.count == 2 else {
                reader.error("\(module.what) must be [out, in] (two integers), found \(shape.count) of them",
                             at: module.valueLocation)
                ok = false
                continue
            }
            keyLocations["model.modules.\(module.key)[0]"] = shape[0].location
            keyLocations["model.modules.\(module.key)[1]"] = shape[1].location
            modules.append(ModelModule(name: module.key, outFeatures: shape[0].value, inFeatures: shape[1].value,
                                       location: module.keyLocation))
        }
        return ok ? modules : nil
    }
}
