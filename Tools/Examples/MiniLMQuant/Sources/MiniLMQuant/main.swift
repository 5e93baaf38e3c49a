// all-MiniLM-L6-v2 in Swift: BERT's WordPiece tokenizer and the float encoder
// on AdaptRuntime's BLAS and TBB (library MiniLM). Its adapter specs
// (*.adapt.yaml beside this file) are compiled at build time by AdaptcPlugin.
//
//     MiniLMQuant embed [--model DIR] [--threads N] [--batch N] [--max-tokens N]  < sentences
//     MiniLMQuant bench [--model DIR] [--threads N] [--batch N] [--sentences N] [--repeats N]
//     MiniLMQuant recover [--model DIR] [--threads N] [--batch N] [--epochs N] [--seed N] [--save DIR] [--tt-start zero|loftq]
//     MiniLMQuant pruned --adapters DIR [--model DIR] [--threads N] [--batch N] [--header yes|no]
import Foundation

let options: Options
do {
    options = try Options.parse(Array(CommandLine.arguments.dropFirst()))
} catch {
    FileHandle.standardError.write(Data("MiniLMQuant: error: \(error)\n\(Options.usage)\n".utf8))
    exit(64)
}

do {
    switch options.command {
    case .embed: try Embed.run(options)
    case .bench: try Bench.run(options)
    case .recover: try Recover.run(options)
    case .pruned: try Pruned.run(options)
    }
} catch {
    FileHandle.standardError.write(Data("MiniLMQuant: error: \(error)\n".utf8))
    exit(1)
}
