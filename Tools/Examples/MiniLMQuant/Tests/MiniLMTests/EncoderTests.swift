import MiniLM
import XCTest

/// The float encoder against PyTorch's embeddings, and batching against itself.
final class EncoderTests: XCTestCase {
    /// Every fixture sentence, all in one packed batch on 2 threads: cosine ≥ 0.9999 to PyTorch.
    func testEmbeddingsMatchPyTorch() throws {
        let checkpoint = try TestFiles.loadCheckpoint()
        let references = try ReferenceEmbeddings.all()
        XCTAssertGreaterThanOrEqual(references.count, 17)
        let encoder = Encoder(weights: checkpoint.weights, threads: 2)
        let ids = references.map { BertTokenizer(vocabulary: checkpoint.vocabulary, maximumTokens: $0.maximumTokens).ids($0.sentence.text) }
        let embeddings = encoder.embed(ids)
        var worst = 1.0
        for ((reference, _), embedding) in zip(references, embeddings) {
            XCTAssertEqual(embedding.count, 384)
            let similarity = cosine(embedding, reference.embedding)
            worst = min(worst, similarity)
            XCTAssertGreaterThanOrEqual(similarity, 0.9999, "\"\(escaped(reference.text))\"")
        }
        print("EncoderTests: worst cosine to PyTorch over \(references.count) sentences: \(worst)")
    }

    /// A sentence's embedding does not depend on the others in its batch, nor on the thread count.
    func testBatchingAndThreadsDoNotChangeEmbeddings() throws {
        let checkpoint = try TestFiles.loadCheckpoint()
        let tokenizer = BertTokenizer(vocabulary: checkpoint.vocabulary, maximumTokens: 512)
        let ids = try ReferenceEmbeddings.all().map { tokenizer.ids($0.sentence.text) }
        let together = Encoder(weights: checkpoint.weights, threads: 2).embed(ids)
        XCTAssertEqual(Encoder(weights: checkpoint.weights, threads: 1).embed(ids), together, "1 thread against 2")
        let alone = Encoder(weights: checkpoint.weights, threads: 2)
        for (index, sentence) in ids.enumerated() {
            let single = alone.embed([sentence])[0]
            let difference = zip(single, together[index]).map { abs($0 - $1) }.max()!
            XCTAssertLessThanOrEqual(difference, 1e-5, "sentence \(index) alone against in the batch")
        }
    }
}
