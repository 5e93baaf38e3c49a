import AdaptRuntime
import Dispatch
import Foundation
import MiniLM

/// `MiniLMQuant recover`: the float model quantised to int4 (groups of 64),
/// then won back by adapters trained on real activations (DESIGN issue 26):
/// every linear map of every layer is quantised (AdaptRuntime's `Quantiser`);
/// each adapter spec of the app starts from `AdapterStart` (LoftQ for lora), trains by `ActivationRegression` with AdamW on
/// the training sentences, and is scored on held-out sentences of other texts
/// against the float model's embeddings. One table row per model; each
/// tensor-train from both starts (ΔW = 0, and LoftQ with TT-SVD). With
/// `--save DIR` each adapter (for tensor-trains, the start `--tt-start` names)
/// is saved with its base and calibration rows for `adaptc prune`
/// (`SavedAdapter`); `MiniLMQuant pruned` scores what prune makes of them.
enum Recover {
    struct Row {
        var name: String
        var parameters: Int
        var agreement: Agreement
        var seconds: Double
        var note: String
    }

    static func run(_ options: Options) throws {
        let checkpoint = try Checkpoint.load(folder: options.model, threads: options.threads)
        let (tokenizer, heldOut, reference, float) = try heldOutAndReference(options, checkpoint)
        let training = try Corpus.sentences(Corpus.training).map(tokenizer.ids)
        let quantiser = Quantiser(bits: 4, group: 64, kind: .symmetric)
        let quantisedWeights = try checkpoint.weights.quantised(quantiser, threads: options.threads)
        let int4 = Encoder(weights: quantisedWeights, threads: options.threads)
        report("\(training.count) training sentences (\(Corpus.training.joined(separator: ", "))), "
               + "\(heldOut.count) held out (\(Corpus.heldOut.joined(separator: ", "))), from \(Corpus.folder)")

        var rows = [
            Row(name: "float", parameters: 0, agreement: Agreement(reference, reference: reference), seconds: 0, note: ""),
            Row(name: "int4 (absmax, group 64)", parameters: 0,
                agreement: Agreement(batches(heldOut, options.batch).flatMap { int4.embed($0) }, reference: reference),
                seconds: 0, note: ""),
        ]
        let context = Context(options: options, training: training, heldOut: heldOut, reference: reference,
                              float: float, int4Weights: quantisedWeights, quantiser: quantiser)
        let tt = options.tensorStart
        rows.append(try context.recover(MiniLMLoraAttentionAdapter.self, "int4 + LoRA r 8, q/k/v/o", learningRate: 2e-4,
                                        saveAs: "minilm-lora-attention"))
        rows.append(try context.recover(MiniLMLoraAllAdapter.self, "int4 + LoRA r 8, all 6 maps", learningRate: 2e-4,
                                        saveAs: "minilm-lora-all"))
        // Both starts of each tensor-train are measured; the one `--tt-start` names is saved for `adaptc prune`.
        for start in [AdapterStart.TensorStart.zero, .loftq] {
            rows.append(try context.recover(MiniLMTTSmallAdapter.self, "int4 + TT r 28, q/k/v/o × 6 layers (\(start.label))",
                                            learningRate: start.learningRate, tensorStart: start,
                                            saveAs: start == tt ? "minilm-tt-small" : nil))
        }
        for start in [AdapterStart.TensorStart.zero, .loftq] {
            rows.append(try context.recover(MiniLMTTEqualAdapter.self, "int4 + TT r 89, q/k/v/o × 6 layers (\(start.label))",
                                            learningRate: start.learningRate, tensorStart: start,
                                            saveAs: start == tt ? "minilm-tt-equal" : nil))
        }
        print(table(rows))
    }

    struct Context {
        let options: Options
        let training: [[Int32]], heldOut: [[Int32]], reference: [[Float]]
        let float: Encoder
        let int4Weights: EncoderWeights
        let quantiser: Quantiser

        func recover<Adapter: GeneratedAdapter>(_ type: Adapter.Type, _ name: String, learningRate: Float,
                                                tensorStart: AdapterStart.TensorStart = .zero, saveAs stem: String?) throws -> Row {
            let begin = DispatchTime.now().uptimeNanoseconds
            let adapter = Adapter(threads: options.threads)
            let binding = try AdapterBinding<Adapter>()
            var base = int4Weights
            let started = try AdapterStart.initialise(adapter, binding, float: float.weights, quantised: &base,
                                                      quantiser: quantiser, iterations: options.loftqIterations,
                                                      seed: options.seed, tensorStart: tensorStart, threads: options.threads)
            let int4 = Encoder(weights: base, threads: options.threads)
            let start = Agreement(try batches(heldOut, options.batch).flatMap {
                try int4.embed($0, observer: AdapterApplication(adapter, binding))
            }, reference: reference)
            var optimizer = AdamW(for: Adapter.self, learningRate: learningRate, weightDecay: 0)
            let targets = FloatOutputs(layers: float.weights.layers.count, maps: binding.maps)
            let regression = ActivationRegression(adapter, binding, targets: targets)
            var random = SeededRandom(seed: options.seed, stream: "batches")
            var losses: [Double] = []
            for epoch in 1...options.epochs {
                regression.reset()
                var order = Array(training.indices)
                for i in stride(from: order.count - 1, to: 0, by: -1) { order.swapAt(i, Int(random.next() % UInt64(i + 1))) }
                for batch in Recover.batches(order.map { training[$0] }, options.batch) {
                    adapter.zeroGradients()
                    _ = try float.embed(batch, observer: targets)
                    _ = try int4.embed(batch, observer: regression)
                    _ = try adapter.clipGradients(maxNorm: 1)
                    try optimizer.step(adapter)
                }
                losses.append(regression.loss / Double(max(regression.terms, 1)))
                report("\(Adapter.specName): epoch \(epoch)/\(options.epochs), loss \(String(format: "%.4f", losses.last!))")
            }
            let agreement = Agreement(try batches(heldOut, options.batch).flatMap {
                try int4.embed($0, observer: AdapterApplication(adapter, binding))
            }, reference: reference)
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - begin) / 1e9
            if let folder = options.save, let stem {
                try SavedAdapter.save(adapter, binding, name: name, seconds: seconds, base: base, quantised: int4,
                                      calibration: SavedAdapter.calibrationSentences(training, count: options.calibrationSentences),
                                      batch: options.batch, to: folder, stem: stem)
            }
            let note = (started.startError > 0
                ? String(format: "LoftQ (%d iterations%@): ‖W − (Q + ΔW)‖/‖W‖ %.4f against int4's %.4f; ",
                         options.loftqIterations, tensorStart == .loftq ? ", TT-SVD" : "", started.startError,
                         started.quantisationError)
                : "ΔW = 0 start; ")
                + String(format: "start mean cos %.5f; loss %.4f → %.4f; lr %g", start.meanCosine, losses.first!, losses.last!,
                         learningRate)
            return Row(name: name, parameters: Adapter.parameterCount, agreement: agreement, seconds: seconds, note: note)
        }
    }

    static func batches<T>(_ items: [T], _ size: Int) -> [[T]] {
        stride(from: 0, to: items.count, by: size).map { Array(items[$0..<min(items.count, $0 + size)]) }
    }

    /// The whole corpus setup both `recover` and `pruned` score on.
    static func heldOutAndReference(_ options: Options, _ checkpoint: Checkpoint) throws
        -> (tokenizer: BertTokenizer, heldOut: [[Int32]], reference: [[Float]], float: Encoder) {
        let tokenizer = BertTokenizer(vocabulary: checkpoint.vocabulary, maximumTokens: 128)
        let heldOut = try Corpus.sentences(Corpus.heldOut).map(tokenizer.ids)
        let float = Encoder(weights: checkpoint.weights, threads: options.threads)
        return (tokenizer, heldOut, batches(heldOut, options.batch).flatMap { float.embed($0) }, float)
    }

    static func report(_ line: String) {
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }

    static func table(_ rows: [Row], header: Bool = true) -> String {
        var lines = header ? ["| model | parameters | mean cosine | worst cosine | neighbour agreement | training s | notes |",
                              "|---|---:|---:|---:|---:|---:|---|"] : []
        for row in rows {
            lines.append("| \(row.name) | \(row.parameters) | " + String(format: "%.5f | %.5f | %.1f%% | %.1f", row.agreement.meanCosine,
                         row.agreement.worstCosine, 100 * row.agreement.neighbours, row.seconds) + " | \(row.note) |")
        }
        return lines.joined(separator: "\n")
    }
}

extension AdapterStart.TensorStart {
    var label: String { self == .zero ? "ΔW = 0 start" : "LoftQ TT-SVD start" }
    /// AdamW's rate, the same for both starts (2e-3, as the ΔW = 0 rows were
    /// measured with), so the rows differ by their start alone.
    var learningRate: Float { 2e-3 }
}
