import AdaptRuntime
import Foundation

/// `adaptc import-peft DIR -o OUT [--name STEM] [--base CKPT]`: writes
/// `OUT/STEM.adapt.yaml` and `OUT/STEM.safetensors`.
public enum ImportPEFTCommand {
    public static func run(folder: String, output: String, stem: String?, basePath: String?) throws -> [String] {
        try run(folders: [folder], tasks: [], output: output, stem: stem, basePath: basePath)
    }

    /// Several folders with `--tasks`: one spec with a task per folder.
    public static func run(folders: [String], tasks: [String], output: String, stem: String?, basePath: String?) throws -> [String] {
        guard let folder = folders.first else { throw UserError("import-peft needs a PEFT adapter folder") }
        if tasks.isEmpty, folders.count > 1 {
            throw UserError("\(folders.count) PEFT folders given without --tasks; name one task per folder (--tasks NAME…) to import them as tasks")
        }
        let stem = stem ?? URL(fileURLWithPath: folder).standardizedFileURL.lastPathComponent
        guard !stem.isEmpty, !stem.contains("/"), stem != ".", stem != ".." else {
            throw UserError("--name \"\(stem)\": must be a plain file stem")
        }
        let specPath = (output as NSString).appendingPathComponent("\(stem).adapt.yaml")
        let adapterPath = (output as NSString).appendingPathComponent("\(stem).safetensors")
        let imported = tasks.isEmpty
            ? try PEFTImport.load(folder: folder, specPath: specPath, stem: stem, basePath: basePath)
            : try PEFTImport.loadTasks(folders: folders, tasks: tasks, specPath: specPath, stem: stem, basePath: basePath)
        let encoded = try imported.adapter.encoded()
        try OutputFolder.create(output)
        try AtomicFile.write(encoded, to: adapterPath)
        try AtomicFile.write(imported.spec, to: specPath)
        let pairs = imported.checked.groups.map(\.pairs.count).reduce(0, +)
        return imported.notes + ["import-peft: \(pairs) pairs in \(imported.checked.groups.count) groups → \(specPath), \(adapterPath)"]
    }
}

/// `adaptc export-peft SPEC --adapter A -o DIR`: writes `DIR/adapter_config.json`
/// and `DIR/adapter_model.safetensors`.
public enum ExportPEFTCommand {
    public static func run(specPath: String, adapterPath: String, output: String, task: String? = nil) throws -> [String] {
        let exported = try PEFTExport.build(specPath: specPath, adapterPath: adapterPath, task: task)
        let weights = try exported.weights.encoded()
        try OutputFolder.create(output)
        let weightsPath = (output as NSString).appendingPathComponent("adapter_model.safetensors")
        let configPath = (output as NSString).appendingPathComponent("adapter_config.json")
        try AtomicFile.write(weights, to: weightsPath)
        try AtomicFile.write(exported.config, to: configPath)
        return ["export-peft: \(exported.pairs) pairs → \(configPath), \(weightsPath)"]
    }
}
