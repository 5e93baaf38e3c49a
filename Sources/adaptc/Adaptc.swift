import AdaptcCore
import AdaptRuntime
import ArgumentParser
import Foundation

/// The `adaptc` command line: a thin shell over AdaptcCore's Driver (DESIGN §1).
/// Diagnostics and errors go to stderr; exit 0 on success, 1 on a user error,
/// 64 on bad usage.
@main
struct Adaptc: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "adaptc",
        abstract: "Compile declarative low-rank adapter specs into Swift kernels.",
        version: SwiftEmitter.adaptcVersion,
        subcommands: [Check.self, PlanCommand.self, Compile.self, Init.self, Eval.self, Materialize.self, Merge.self,
                      Prune.self, ImportPEFT.self, ExportPEFT.self, ExportGGUF.self]
    )

    /// No subcommand is bad usage: help on stderr, exit 64.
    func run() throws {
        FileHandle.standardError.write(Data((Adaptc.helpMessage() + "\n").utf8))
        throw ExitCode(64)
    }
}

struct Threads: ParsableArguments {
    @Option(help: "Worker threads for parallel steps (0: all cores).")
    var threads: Int = 0

    func validate() throws {
        guard threads >= 0 else { throw ValidationError("--threads must be 0 or more") }
    }
}

/// Runs a command body, turning every user-caused error into one line on stderr and exit 1.
/// A write into a closed pipe or past `ulimit -f` is an error from `write`, not a
/// signal; summaries go to stderr when `output` is stdout itself (`-o /dev/stdout`).
func guarded(output: String? = nil, _ body: () throws -> [String]) throws {
    signal(SIGPIPE, SIG_IGN)
    signal(SIGXFSZ, SIG_IGN)
    do {
        let lines = try body()
        if let output, OutputDestination.isStandardOutput(output) {
            for line in lines { FileHandle.standardError.write(Data((line + "\n").utf8)) }
        } else {
            for line in lines { print(line) }
        }
    } catch let errors as SpecErrors {
        report(errors.diagnostics)
        throw ExitCode(1)
    } catch let error as UserError {
        fail(error.message)
    } catch let error as SafetensorsError {
        fail(error.message)
    } catch let error as AdapterError {
        fail(error.message)
    } catch let error as FileWriteError {
        fail(error.message)
    } catch let error as ExitCode {
        throw error
    } catch {
        fail("\(error)")
    }
}

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("adaptc: error: \(message)\n".utf8))
    Foundation.exit(1)
}

func report(_ diagnostics: [Diagnostic]) {
    for d in diagnostics { FileHandle.standardError.write(Data("\(d)\n".utf8)) }
}

struct Check: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Check specs; print diagnostics, write nothing.")

    @Argument(help: "Spec files (*.adapt.yaml).")
    var specs: [String]

    func run() throws {
        var failed = false
        for path in specs {
            do {
                let checked = try SpecLoader.load(path: path)
                report(checked.diagnostics)
                let pairs = checked.groups.map { $0.pairs.count }.reduce(0, +)
                print("\(path): ok (\(checked.groups.count) groups, \(pairs) pairs)")
            } catch let errors as SpecErrors {
                report(errors.diagnostics)
                failed = true
            } catch let error as UserError {
                FileHandle.standardError.write(Data("adaptc: error: \(error.message)\n".utf8))
                failed = true
            }
        }
        if failed { throw ExitCode(1) }
    }
}

struct PlanCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "plan", abstract: "Print the contraction plan, parameters and FLOPs.")

    @Argument(help: "Spec file.") var spec: String
    @Option(help: "Token rows n for the FLOP figures.") var tokens: Int = 64
    @Flag(help: "Print one JSON object instead of text.") var json = false
    @Flag(help: "Also print every program of the Plan IR.") var verbose = false

    func validate() throws {
        guard tokens >= 1 && tokens <= 1 << 24 else { throw ValidationError("--tokens must be in 1...16777216") }
    }

    func run() throws {
        try guarded {
            let (checked, plan) = try SpecLoader.loadPlanned(path: spec)
            report(checked.diagnostics)
            let figures = PlanReport(checked: checked, plan: plan, tokens: tokens)
            if json { return [figures.json] }
            return [figures.text] + (verbose ? [plan.description] : [])
        }
    }
}

struct Compile: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Generate Swift source for specs.")

    @Argument(help: "Spec files.") var specs: [String]
    @Option(name: .short, help: "Output folder.") var o: String

    func run() throws {
        try guarded { try CompileCommand.run(specPaths: specs, outputDirectory: o) }
    }
}

struct Init: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Write initial adapter weights for a spec.")

    @Argument(help: "Spec file.") var spec: String
    @Option(name: .short, help: "Output adapter file (.safetensors).") var o: String
    @Option(help: "Base checkpoint (SVD-based methods).") var base: String?
    @Option(help: "Residual checkpoint to write (SVD-based methods).") var residual: String?
    @Option(help: "Random seed (overrides init.seed).") var seed: UInt64?
    @OptionGroup var threads: Threads

    func run() throws {
        try guarded(output: o) {
            try InitCommand.run(specPath: spec, output: o, seed: seed, basePath: base, residualPath: residual, threads: threads.threads)
        }
    }
}

struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Compute x·ΔWᵀ for inputs keyed LAYER.MODULE.")

    @Argument(help: "Spec file.") var spec: String
    @Option(help: "Adapter weights.") var adapter: String
    @Option(help: "Inputs [n, in] keyed LAYER.MODULE.") var input: String
    @Option(help: "Base checkpoint (needed by DoRA groups).") var base: String?
    @Option(help: "Task to run, for a spec with tasks (DESIGN §2 \"Tasks\").") var task: String?
    @Option(name: .short, help: "Output file.") var o: String
    @OptionGroup var threads: Threads

    func run() throws {
        try guarded(output: o) {
            [try EvalCommand.eval(specPath: spec, adapterPath: adapter, inputPath: input, output: o, basePath: base,
                                  task: task, threads: threads.threads)]
        }
    }
}

struct Materialize: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Write ΔW [out, in] of every pair, keyed LAYER.MODULE.")

    @Argument(help: "Spec file.") var spec: String
    @Option(help: "Adapter weights.") var adapter: String
    @Option(help: "Base checkpoint (needed by DoRA groups).") var base: String?
    @Option(help: "Task to run, for a spec with tasks (DESIGN §2 \"Tasks\").") var task: String?
    @Option(name: .short, help: "Output file.") var o: String
    @OptionGroup var threads: Threads

    func run() throws {
        try guarded(output: o) { [try EvalCommand.materialize(specPath: spec, adapterPath: adapter, output: o, basePath: base,
                                                              task: task, threads: threads.threads)] }
    }
}

struct Merge: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Write the base checkpoint with W + ΔW (or W − ΔW).")

    @Argument(help: "Spec file.") var spec: String
    @Option(help: "Adapter weights.") var adapter: String
    @Option(help: "Base checkpoint.") var base: String
    @Option(name: .short, help: "Output checkpoint.") var o: String
    @Flag(help: "Subtract ΔW instead (undo a merge).") var unmerge = false
    @Option(help: "Task to run, for a spec with tasks (DESIGN §2 \"Tasks\").") var task: String?
    @OptionGroup var threads: Threads

    func run() throws {
        try guarded(output: o) {
            [try MergeCommand.run(specPath: spec, adapterPath: adapter, basePath: base, output: o,
                                  unmerge: unmerge, task: task, threads: threads.threads)]
        }
    }
}

struct ImportPEFT: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "import-peft", abstract: "Turn a PEFT LoRA folder into a spec and adapter weights.")

    @Argument(help: "PEFT adapter folders (adapter_config.json, adapter_model.safetensors); several need --tasks.") var folders: [String]
    @Option(parsing: .upToNextOption, help: "One task name per folder: one spec with a task each (DESIGN §2 \"Tasks\").") var tasks: [String] = []
    @Option(name: .short, help: "Output folder.") var o: String
    @Option(help: "File stem of the outputs (default: the folder's name).") var name: String?
    @Option(help: "Base checkpoint: layer count and shapes from it.") var base: String?

    func run() throws {
        try guarded { try ImportPEFTCommand.run(folders: folders, tasks: tasks, output: o, stem: name, basePath: base) }
    }
}

struct ExportPEFT: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "export-peft", abstract: "Write an adapter as a PEFT LoRA folder.")

    @Argument(help: "Spec file.") var spec: String
    @Option(help: "Adapter weights.") var adapter: String
    @Option(name: .short, help: "Output folder.") var o: String
    @Option(help: "Task to write, for a spec with tasks (DESIGN §5).") var task: String?

    func run() throws {
        try guarded { try ExportPEFTCommand.run(specPath: spec, adapterPath: adapter, output: o, task: task) }
    }
}

struct ExportGGUF: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "export-gguf", abstract: "Write an adapter as a llama.cpp LoRA GGUF file.")

    @Argument(help: "Spec file.") var spec: String
    @Option(help: "Adapter weights.") var adapter: String
    @Option(help: "llama.cpp architecture (general.architecture): llama, qwen2 or bert.") var arch: String
    @Option(help: "Query heads and key/value heads, H[:KV]; needed for llama when q or k is adapted.") var heads: String?
    @Option(help: "Tensor type: f32 or f16.") var dtype: String = "f32"
    @Option(name: .short, help: "Output file (.gguf).") var o: String

    func run() throws {
        try guarded(output: o) {
            try ExportGGUFCommand.run(specPath: spec, adapterPath: adapter, architecture: arch, heads: heads, dtype: dtype, output: o)
        }
    }
}

struct Prune: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Drop low-importance layers and ranks by calibration output energy (LoRA-drop; data-weighted TT/Tucker rounding; CP leave-one-out); write a smaller spec and weights.")

    @Argument(help: "Spec file.") var spec: String
    @Option(help: "Adapter weights.") var adapter: String
    @Option(help: "Calibration rows [n, in] keyed LAYER.MODULE.") var calib: String
    @Option(help: "Share of output energy to keep, in (0, 1] (default: the spec's prune.threshold, 0.9).") var threshold: Double?
    @Option(help: "Levels to prune: layer, rank or layer,rank (default: the spec's).") var levels: String?
    @Option(help: "Rank level scope: pair or global (default: the spec's).") var scope: String?
    @Option(name: .short, help: "Output folder.") var o: String
    @OptionGroup var threads: Threads

    func run() throws {
        try guarded {
            try PruneCommand.run(specPath: spec, adapterPath: adapter, calibrationPath: calib, output: o, threshold: threshold,
                                 levels: levels, scope: scope, threads: threads.threads)
        }
    }
}
