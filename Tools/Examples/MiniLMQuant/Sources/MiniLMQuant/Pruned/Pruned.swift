import AdaptRuntime
import Foundation
import MiniLM
import MiniLMPruned

/// `MiniLMQuant pruned --adapters DIR`: the adapters `adaptc prune` made of
/// those `recover --save DIR` trained (`DIR/pruned/STEM/STEM.safetensors`),
/// loaded through the generated code of the pruned specs compiled into this
/// app (target MiniLMPruned; `init(weights:)` refuses a file whose spec hash is
/// not the compiled spec's), each on the quantised base its source adapter was
/// trained on, and scored on the held-out sentences as `recover` scores.
enum Pruned {
    static func run(_ options: Options) throws {
        guard let folder = options.save else { throw Options.BadOption(description: "pruned needs --adapters DIR") }
        let checkpoint = try Checkpoint.load(folder: options.model, threads: options.threads)
        let (_, heldOut, reference, _) = try Recover.heldOutAndReference(options, checkpoint)
        let int4 = try checkpoint.weights.quantised(Quantiser(bits: 4, group: 64, kind: .symmetric), threads: options.threads)
        let score = Score(options: options, folder: folder, heldOut: heldOut, reference: reference, int4: int4)
        let rows = [
            try score.row(MiniLMPruned.MiniLMLoraAttentionAdapter.self, stem: "minilm-lora-attention"),
            try score.row(MiniLMPruned.MiniLMLoraAllAdapter.self, stem: "minilm-lora-all"),
            try score.row(MiniLMPruned.MiniLMTTSmallAdapter.self, stem: "minilm-tt-small"),
            try score.row(MiniLMPruned.MiniLMTTEqualAdapter.self, stem: "minilm-tt-equal"),
        ]
        print(Recover.table(rows, header: options.header))
    }

    struct Score {
        let options: Options
        let folder: String
        let heldOut: [[Int32]], reference: [[Float]]
        let int4: EncoderWeights

        func row<Adapter: GeneratedAdapter>(_ type: Adapter.Type, stem: String) throws -> Recover.Row {
            let summary = try SavedAdapter.summary(folder, stem: stem)
            let path = (folder as NSString).appendingPathComponent("pruned/\(stem)/\(stem).safetensors")
            let adapter = try Adapter(weights: SafetensorsFile.read(path: path), threads: options.threads)
            let base = try int4.replacing(from: SafetensorsFile.read(path: (folder as NSString).appendingPathComponent(stem + ".base.safetensors")))
            let binding = try AdapterBinding<Adapter>()
            let encoder = Encoder(weights: base, threads: options.threads)
            let agreement = Agreement(try Recover.batches(heldOut, options.batch).flatMap {
                try encoder.embed($0, observer: AdapterApplication(adapter, binding))
            }, reference: reference)
            let pruneSeconds = (try? String(contentsOfFile: (folder as NSString).appendingPathComponent("pruned/\(stem)/seconds"), encoding: .utf8))
                .flatMap { Double($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
            let note = "adaptc prune from \(summary.parameters) parameters, through the generated code of Sources/MiniLMPruned/\(stem).adapt.yaml; "
                + "training s are the source's" + (pruneSeconds.map { String(format: ", prune %.1f s", $0) } ?? "")
            Recover.report("\(Adapter.specName) (pruned): mean cos \(String(format: "%.5f", agreement.meanCosine))")
            return Recover.Row(name: summary.name + " → pruned", parameters: Adapter.parameterCount, agreement: agreement,
                               seconds: summary.seconds, note: note)
        }
    }
}
