import AdaptRuntime
import Foundation
import MiniLM

/// Command-line options (hand-parsed: the example needs no other package).
struct Options {
    enum Command: String { case embed, bench, recover, pruned }

    var command: Command
    /// The checkpoint folder; `ADAPTC_MINILM_CACHE`, else `.build/minilm` (where
    /// Tools/fetch-minilm puts it, run from the repository root).
    var model = ProcessInfo.processInfo.environment["ADAPTC_MINILM_CACHE"] ?? ".build/minilm"
    var threads = 2
    var batch = 32
    /// Tokens per sentence at most, [CLS] and [SEP] included (the model has 512 positions).
    var maximumTokens = 512
    var sentences = 1000
    var repeats = 5
    var epochs = 6
    /// LoftQ's alternations for lora adapters (the LoftQ paper uses 5).
    var loftqIterations = 5
    var seed: UInt64 = 1
    /// `recover`: where to save each adapter for `adaptc prune` (`SavedAdapter`); `pruned`: where they were saved.
    var save: String?
    /// The tensor-train start saved for pruning (both are measured).
    var tensorStart = AdapterStart.TensorStart.loftq
    /// Training sentences whose adapted-map inputs are saved as calibration rows.
    var calibrationSentences = 48
    /// `pruned`: print the table's header (no: rows that continue `recover`'s table).
    var header = true

    static let usage = """
        usage: MiniLMQuant embed [--model DIR] [--threads N] [--batch N] [--max-tokens N]
                 sentences on stdin, one a line; for each, a JSON array of its embedding on stdout
               MiniLMQuant bench [--model DIR] [--threads N] [--batch N] [--sentences N] [--repeats N]
                 the minilm-embed benchmark (DESIGN §8), one JSON line
               MiniLMQuant recover [--model DIR] [--threads N] [--batch N] [--epochs N] [--loftq-iterations N] [--seed N]
                 [--save DIR] [--tt-start zero|loftq] [--calibration-sentences N]
                 int4 quantisation won back by each adapter spec of the app; a Markdown table
               MiniLMQuant pruned --adapters DIR [--model DIR] [--threads N] [--batch N] [--header yes|no]
                 the adapters `adaptc prune` made of those `recover --save DIR` saved (DIR/pruned/STEM/),
                 loaded through the pruned specs' generated code; table rows
        """

    struct BadOption: Error, CustomStringConvertible { let description: String }

    static func parse(_ arguments: [String]) throws -> Options {
        guard let first = arguments.first else { throw BadOption(description: "no command") }
        guard let command = Command(rawValue: first) else { throw BadOption(description: "unknown command \(first)") }
        var options = Options(command: command)
        var rest = arguments.dropFirst()
        while let flag = rest.popFirst() {
            guard let value = rest.popFirst() else { throw BadOption(description: "\(flag) needs a value") }
            switch (command, flag) {
            case (_, "--model"): options.model = value
            case (_, "--threads"): options.threads = try positive(value, flag, atMost: 1024)
            case (_, "--batch"): options.batch = try positive(value, flag, atMost: 4096)
            case (.embed, "--max-tokens"): options.maximumTokens = try positive(value, flag, atMost: 512, atLeast: 2)
            case (.bench, "--sentences"): options.sentences = try positive(value, flag, atMost: 1_000_000)
            case (.bench, "--repeats"): options.repeats = try positive(value, flag, atMost: 1000)
            case (.recover, "--epochs"): options.epochs = try positive(value, flag, atMost: 1000)
            case (.recover, "--loftq-iterations"): options.loftqIterations = try positive(value, flag, atMost: 100)
            case (.recover, "--seed"): options.seed = UInt64(try positive(value, flag, atMost: Int.max, atLeast: 0))
            case (.recover, "--save"), (.pruned, "--adapters"): options.save = value
            case (.recover, "--tt-start"):
                guard let start = AdapterStart.TensorStart(rawValue: value) else {
                    throw BadOption(description: "--tt-start takes zero or loftq")
                }
                options.tensorStart = start
            case (.recover, "--calibration-sentences"): options.calibrationSentences = try positive(value, flag, atMost: 100_000)
            case (.pruned, "--header"):
                guard value == "yes" || value == "no" else { throw BadOption(description: "--header takes yes or no") }
                options.header = value == "yes"
            default: throw BadOption(description: "unknown option \(flag) for \(command.rawValue)")
            }
        }
        return options
    }

    private static func positive(_ value: String, _ flag: String, atMost limit: Int, atLeast lower: Int = 1) throws -> Int {
        guard let number = Int(value), number >= lower, number <= limit else {
            throw BadOption(description: "\(flag) takes an integer in \(lower)...\(limit)")
        }
        return number
    }
}
