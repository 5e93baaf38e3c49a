import AdaptRuntime
import Foundation

/// `adaptc compile`: one Swift file per spec, `DIR/<Name>Adapter.swift`.
public enum CompileCommand {
    /// The generated source for one spec (what `compile` writes).
    public static func source(specPath: String) throws -> (fileName: String, source: String) {
        let (checked, plan) = try SpecLoader.loadPlanned(path: specPath)
        let specFile = URL(fileURLWithPath: specPath).lastPathComponent
        // The emitter does not write task routing yet: plan, eval and the interpreter run such groups.
        if let group = checked.groups.first(where: { !$0.tasks.isEmpty }) {
            throw SpecErrors([Diagnostic(.error, at: group.group.location(of: "tasks"),
                                         "not supported yet: generated code for group '\(group.name)' with tasks "
                                         + "('adaptc plan' and the interpreter run it)")])
        }
        let source = SwiftEmitter.emit(checked, plan: plan, specFileName: specFile)
        return (checked.spec.adapterTypeName + ".swift", source)
    }

    public static func run(specPaths: [String], outputDirectory: String) throws -> [String] {
        // Everything is generated before anything is written: one bad spec leaves the folder as it was.
        let outputs = try specPaths.map(source(specPath:))
        var seen = Set<String>()
        for (name, _) in outputs where !seen.insert(name).inserted {
            throw UserError("two specs generate \(name); spec names must differ")
        }
        try OutputFolder.create(outputDirectory)
        return try outputs.map { name, source in
            let path = (outputDirectory as NSString).appendingPathComponent(name)
            try AtomicFile.write(source, to: path)
            return "wrote \(path)"
        }
    }
}
