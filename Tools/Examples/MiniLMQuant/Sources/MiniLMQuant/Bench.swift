import Dispatch
import MiniLM

/// `MiniLMQuant bench`: the `minilm-embed` case of DESIGN §8 — tokenize,
/// encode, pool and normalise the benchmark sentences in batches, in order;
/// `seconds` is the median of the repeats after one warm-up pass.
enum Bench {
    /// Sentence k (0…count-1) is the words of vocab.txt at lines (0-based: the
    /// token ids) 2000 + (7919·k + 104729·j) mod 20000 for j = 0 … 7 + k mod 24,
    /// joined by single spaces. Tools/Peers/minilm-embed.py builds the same.
    static func sentences(_ vocabulary: Vocabulary, count: Int) -> [String] {
        (0..<count).map { (k: Int) -> String in
            let words = (0...(7 + k % 24)).map { (j: Int) -> String in
                let line: Int = 2000 + (7919 * k + 104_729 * j) % 20000
                return vocabulary.tokens[line]
            }
            return words.joined(separator: " ")
        }
    }

    static func run(_ options: Options) throws {
        let checkpoint = try Checkpoint.load(folder: options.model, threads: options.threads)
        let tokenizer = BertTokenizer(vocabulary: checkpoint.vocabulary, maximumTokens: 512)
        let encoder = Encoder(weights: checkpoint.weights, threads: options.threads)
        let sentences = sentences(checkpoint.vocabulary, count: options.sentences)
        var checksum: Float = 0
        func pass() {
            var start = 0
            while start < sentences.count {
                let batch = sentences[start..<min(sentences.count, start + options.batch)]
                for embedding in encoder.embed(batch.map(tokenizer.ids)) { checksum += embedding[0] }
                start += options.batch
            }
        }
        pass()
        var samples: [Double] = []
        for _ in 0..<options.repeats {
            let begin = DispatchTime.now().uptimeNanoseconds
            pass()
            samples.append(Double(DispatchTime.now().uptimeNanoseconds - begin) / 1e9)
        }
        let median = samples.sorted()[samples.count / 2]
        let tokens = sentences.reduce(0) { $0 + tokenizer.ids($1).count }
        print("{\"case\": \"minilm-embed\", \"variant\": \"batch\(options.batch)\", \"n\": \(sentences.count), "
              + "\"tokens\": \(tokens), \"impl\": \"adaptc\", \"threads\": \(options.threads), "
              + "\"seconds\": \(String(format: "%.6g", median)), \"checksum\": \(String(format: "%.6g", checksum / Float(options.repeats + 1)))}")
    }
}
