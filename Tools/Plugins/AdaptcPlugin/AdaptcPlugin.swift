import Foundation
import PackagePlugin

/// Build-tool plugin: every `*.adapt.yaml` among a target's sources is compiled
/// by `adaptc compile` into the plugin work directory at build time, and the
/// generated `<Name>Adapter.swift` is compiled into the target. Editing a spec
/// reruns its command; `adaptc`'s diagnostics (`path:line:column: error: …`)
/// go to the build log, so `swift build` and IDEs point at the spec line.
@main
struct AdaptcPlugin: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        guard let target = target as? SourceModuleTarget else { return [] }
        let adaptc = try context.tool(named: "adaptc").url
        return target.sourceFiles(withSuffix: ".adapt.yaml").sorted { $0.url.path < $1.url.path }.map { spec in
            let stem = spec.url.lastPathComponent.replacingOccurrences(of: ".adapt.yaml", with: "")
            // One folder per spec, so two specs never share an output path.
            let folder = context.pluginWorkDirectoryURL.appendingPathComponent(stem, isDirectory: true)
            let output = folder.appendingPathComponent(SpecName.generatedFileName(spec: spec.url, fallback: stem))
            return .buildCommand(
                displayName: "adaptc compile \(spec.url.lastPathComponent)",
                executable: adaptc,
                arguments: ["compile", spec.url.path, "-o", folder.path],
                inputFiles: [spec.url],
                outputFiles: [output]
            )
        }
    }
}

/// The file `adaptc compile` writes for a spec, `<Name>Adapter.swift`, where
/// `Name` is the spec's top-level `name:`. The build system needs output paths
/// before the command runs, so the plugin reads that one line itself (block
/// style, `name: Foo` at column 0, as every example spec writes it). A spec
/// without such a line gets `<stem>Adapter.swift`: when the spec is broken,
/// `adaptc` reports the real problem; a valid spec that writes its top level
/// in flow style (`{adaptc: 1, name: Foo, …}`) builds with a "missing output"
/// error from SwiftPM — write `name:` on a line of its own.
enum SpecName {
    static func generatedFileName(spec: URL, fallback: String) -> String {
        let text = (try? String(contentsOf: spec, encoding: .utf8)) ?? ""
        for line in text.split(separator: "\n", omittingEmptySubsequences: true) where line.hasPrefix("name:") {
            var value = line.dropFirst("name:".count)
            if let comment = value.firstIndex(of: "#") { value = value[..<comment] }
            let name = value.trimmingCharacters(in: .whitespaces).trimmingCharacters(in: CharacterSet(charactersIn: "\"'"))
            if !name.isEmpty, name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }) { return name + "Adapter.swift" }
        }
        return fallback + "Adapter.swift"
    }
}
