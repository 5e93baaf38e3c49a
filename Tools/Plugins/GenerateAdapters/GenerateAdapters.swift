import Foundation
import PackagePlugin

/// Command plugin for teams that check generated code in:
///
///     swift package --allow-writing-to-package-directory generate-adapters [--target NAME]…
///     swift package --allow-writing-to-package-directory generate-adapters --output DIR SPEC…
///
/// The first form compiles the `*.adapt.yaml` files of each named target (all
/// targets when none is named), each into the folder that holds it (a target
/// that does this lists its specs under `exclude:`); the second compiles the given specs into `DIR`. Output is what
/// `adaptc compile` writes: deterministic, each file replaced atomically.
@main
struct GenerateAdapters: CommandPlugin {
    func performCommand(context: PluginContext, arguments: [String]) async throws {
        var extractor = ArgumentExtractor(arguments)
        let targetNames = extractor.extractOption(named: "target")
        let output = extractor.extractOption(named: "output").last
        let specs = extractor.remainingArguments
        let adaptc = try context.tool(named: "adaptc").url

        if !specs.isEmpty {
            guard let output else { throw GenerateError("generate-adapters: specs given without --output DIR") }
            let base = context.package.directoryURL
            let resolve = { (path: String) in path.hasPrefix("/") ? path : base.appendingPathComponent(path).path }
            try run(adaptc, ["compile"] + specs.map(resolve) + ["-o", resolve(output)])
            return
        }
        let targets = try targetNames.isEmpty ? context.package.targets : context.package.targets(named: targetNames)
        var compiled = 0
        for case let target as SourceModuleTarget in targets {
            let specs = target.sourceFiles(withSuffix: ".adapt.yaml").map(\.url).sorted { $0.path < $1.path }
            // Each spec's Swift file goes beside it; one adaptc run per folder keeps a folder all-or-nothing.
            let folders = Dictionary(grouping: specs) { $0.deletingLastPathComponent().path }
            for folder in folders.keys.sorted() {
                try run(adaptc, ["compile"] + folders[folder]!.map(\.path) + ["-o", folder])
            }
            compiled += specs.count
        }
        if compiled == 0 { Diagnostics.warning("generate-adapters: no *.adapt.yaml in the selected targets") }
    }

    /// Runs `adaptc`, its output passed through; a failure fails the command.
    private func run(_ tool: URL, _ arguments: [String]) throws {
        let process = Process()
        process.executableURL = tool
        process.arguments = arguments
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw GenerateError("adaptc \(arguments.first ?? "") failed (status \(process.terminationStatus)); see its diagnostics above")
        }
    }
}

struct GenerateError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
