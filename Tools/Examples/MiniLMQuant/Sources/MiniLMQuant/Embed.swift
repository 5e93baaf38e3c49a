import Foundation
import MiniLM

/// `MiniLMQuant embed`: each line of stdin → one JSON array of its embedding.
enum Embed {
    static func run(_ options: Options) throws {
        let lines = try InputLines.read(FileHandle.standardInput.readDataToEndOfFile())
        let checkpoint = try Checkpoint.load(folder: options.model, threads: options.threads)
        let tokenizer = BertTokenizer(vocabulary: checkpoint.vocabulary, maximumTokens: options.maximumTokens)
        let encoder = Encoder(weights: checkpoint.weights, threads: options.threads)
        var start = 0
        while start < lines.count {
            let batch = lines[start..<min(lines.count, start + options.batch)]
            var text = ""
            for embedding in encoder.embed(batch.map(tokenizer.ids)) {
                text += "[" + embedding.map { "\($0)" }.joined(separator: ", ") + "]\n"
            }
            FileHandle.standardOutput.write(Data(text.utf8))
            start += options.batch
        }
    }
}
