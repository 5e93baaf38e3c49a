import AdaptRuntime
import Foundation

/// `adaptc prune`: LoRA-drop on a spec and its adapter, and its tensor counterparts
/// (TT and Tucker rounding, CP leave-one-out; DESIGN §4). Everything
/// is checked and computed first; only then is `DIR` created and its four files
/// written, each atomically: `STEM.adapt.yaml`, `STEM.safetensors`,
/// `report.json`, `report.svg`.
public enum PruneCommand {
    /// `threshold`, `levels` ("layer,rank") and `scope` override the spec's `prune:`.
    public static func run(specPath: String, adapterPath: String, calibrationPath: String, output: String,
                           threshold: Double?, levels: String?, scope: String?, threads: Int) throws -> [String] {
        let source = try SpecLoader.readText(specPath)
        let (checked, plan) = try SpecLoader.loadPlanned(path: specPath)
        let settings = try self.settings(checked.spec.prune, threshold: threshold, levels: levels, scope: scope)
        // Layer level gives dropped layers one shared adapter per module, but
        // DoRA keeps a magnitude (and its own W) per pair: refused, not guessed.
        if settings.levels.contains(.layer), let group = checked.groups.first(where: { $0.group.dora }) {
            throw UserError("\(specPath): group '\(group.name)' is DoRA: layer-level pruning would make its dropped layers share one adapter, but each DoRA pair keeps its own magnitude m; prune it with --levels rank")
        }
        try refuseFile(at: output)
        let stem = Self.stem(specPath)
        let specOut = (output as NSString).appendingPathComponent(stem + ".adapt.yaml")
        let weightsOut = (output as NSString).appendingPathComponent(stem + ".safetensors")
        try refuseOverwriting([specPath, adapterPath, calibrationPath], with: [specOut, weightsOut])
        let adapter = try AdapterFiles.load(adapterPath, checked: checked, plan: plan, threads: threads)
        let calibration = try CalibrationSet.load(calibrationPath, checked: checked)

        let result = PruneStage.run(checked, plan: plan, adapter: adapter, calibration: calibration, settings: settings)
        let files = try PrunedFiles.make(source: source, checked: checked, plan: plan, result: result, specPath: specPath,
                                          prunedSpecPath: specOut)

        try OutputFolder.create(output)
        try AtomicFile.write(files.spec, to: specOut)
        try AtomicFile.write(files.weights, to: weightsOut)
        try AtomicFile.write(files.reportJSON, to: (output as NSString).appendingPathComponent("report.json"))
        try AtomicFile.write(files.reportSVG, to: (output as NSString).appendingPathComponent("report.svg"))
        return files.table + ["wrote \(specOut), \(weightsOut), report.json, report.svg"]
    }

    /// The spec's `prune:` with the command line's flags applied, each checked.
    static func settings(_ base: PruneSettings, threshold: Double?, levels: String?, scope: String?) throws -> PruneSettings {
        var settings = base
        if let threshold { settings.threshold = threshold }
        guard settings.threshold > 0 && settings.threshold <= 1 else {
            throw UserError("the threshold must be in (0, 1], found \(settings.threshold)")
        }
        if let levels {
            settings.levels = try levels.split(separator: ",", omittingEmptySubsequences: false).map { name in
                let trimmed = name.trimmingCharacters(in: .whitespaces)
                guard let level = PruneLevel(rawValue: trimmed) else {
                    throw UserError("--levels: unknown level '\(trimmed)'; the levels are layer and rank (e.g. --levels layer,rank)")
                }
                return level
            }
        }
        if let scope {
            guard let value = PruneScope(rawValue: scope) else {
                throw UserError("--scope: unknown scope '\(scope)'; the scopes are pair and global")
            }
            settings.scope = value
        }
        return settings
    }

    /// `-o` names a folder: an existing file there is an error before any work.
    static func refuseFile(at path: String) throws {
        var isFolder: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isFolder), !isFolder.boolValue {
            throw UserError("\(path): exists and is not a folder (prune writes a folder)")
        }
    }

    /// `-o` next to the inputs would replace them: refused, the inputs are the user's only copy.
    static func refuseOverwriting(_ inputs: [String], with outputs: [String]) throws {
        let resolved = Set(inputs.map { URL(fileURLWithPath: $0).standardizedFileURL.resolvingSymlinksInPath().path })
        for output in outputs where resolved.contains(URL(fileURLWithPath: output).standardizedFileURL.resolvingSymlinksInPath().path) {
            throw UserError("\(output): would overwrite an input of prune; choose another -o folder")
        }
    }

    /// `bert.adapt.yaml` → `bert`.
    static func stem(_ path: String) -> String {
        var name = (path as NSString).lastPathComponent
        for suffix in [".adapt.yaml", ".yaml", ".yml"] where name.hasSuffix(suffix) {
            name.removeLast(suffix.count)
            break
        }
        return name.isEmpty ? "pruned" : name
    }
}
