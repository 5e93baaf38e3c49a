import AdaptRuntime
import Foundation

/// Runs `adaptc eval` on the saved adapter with fresh inputs and compares its
/// outputs with the app's own forward: what an app trained is what the
/// command-line tools (eval, merge, prune, export-peft) read.
enum EvalCheck {
    struct Failure: Error, CustomStringConvertible { let description: String }

    /// The largest relative difference over every pair (max |Δ| / max |y|).
    static func run(adapter: Adapter, savedAt path: String, pairs: [(layer: Int, module: Adapter.Module)],
                    options: Options) throws -> Double {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("TrainAdapter-\(ProcessInfo.processInfo.processIdentifier)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        var random = SplitMix64(seed: options.seed &+ 3)
        var inputs = SafetensorsWriter()
        var expected: [String: [Float]] = [:]
        for pair in pairs {
            let key = "\(pair.layer).\(Adapter.moduleName(pair.module))"
            let width = Adapter.shape(of: pair.module).in
            let x = (0..<4 * width).map { _ in random.uniform() }
            inputs.add(key, floats: x, shape: [4, width])
            expected[key] = try adapter.forward(layer: pair.layer, module: pair.module, x: x, rows: 4)
        }
        let inputPath = folder.appendingPathComponent("x.safetensors").path
        let outputPath = folder.appendingPathComponent("y.safetensors").path
        try inputs.write(to: inputPath)
        try runAdaptc(["eval", specPath, "--adapter", path, "--input", inputPath, "-o", outputPath], options: options)
        let outputs = try SafetensorsFile.read(path: outputPath)
        var worst = 0.0
        for (key, y) in expected.sorted(by: { $0.key < $1.key }) {
            let got = try outputs.floats(key)
            let scale = max(y.map { abs(Double($0)) }.max() ?? 0, 1e-30)
            let difference = zip(got, y).map { abs(Double($0) - Double($1)) }.max() ?? .infinity
            worst = max(worst, got.count == y.count ? difference / scale : .infinity)
        }
        return worst
    }

    /// The spec, beside this source file.
    static let specPath = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("tiny-attention.adapt.yaml").path

    /// `--adaptc`, else `$ADAPTC`, else the `adaptc` SwiftPM built next to this
    /// executable for the build-tool plugin, else `adaptc` on PATH.
    static func adaptcPath(_ options: Options) -> String {
        if let path = options.adaptc ?? ProcessInfo.processInfo.environment["ADAPTC"] { return path }
        let folder = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        // SwiftPM names a plugin's tool `adaptc-tool` on some versions, `adaptc` on others.
        for name in ["adaptc-tool", "adaptc"] {
            let beside = folder.appendingPathComponent(name).path
            if FileManager.default.isExecutableFile(atPath: beside) { return beside }
        }
        return "/usr/bin/env"
    }

    static func runAdaptc(_ arguments: [String], options: Options) throws {
        let process = Process()
        let tool = adaptcPath(options)
        process.executableURL = URL(fileURLWithPath: tool)
        process.arguments = tool == "/usr/bin/env" ? ["adaptc"] + arguments : arguments
        process.standardOutput = FileHandle.nullDevice  // its summary line names a temporary folder
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw Failure(description: "adaptc \(arguments[0]) failed with status \(process.terminationStatus) (adaptc: \(tool))")
        }
    }
}
