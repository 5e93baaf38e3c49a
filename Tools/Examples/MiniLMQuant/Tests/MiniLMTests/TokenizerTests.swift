import MiniLM
import XCTest

/// Token ids against transformers' BertTokenizer (Fixtures/make_fixtures.py made them).
final class TokenizerTests: XCTestCase {
    struct Case: Decodable {
        let text: String
        let max_tokens: Int
        let input_ids: [Int32]
    }

    struct Cases: Decodable { let cases: [Case] }

    func testIdsEqualTransformersOnEveryCase() throws {
        let vocabulary = try TestFiles.loadCheckpoint().vocabulary
        let cases = try TestFiles.decode(Cases.self, "tokenizer-cases.json").cases
        XCTAssertGreaterThan(cases.count, 100)
        for item in cases {
            let ids = BertTokenizer(vocabulary: vocabulary, maximumTokens: item.max_tokens).ids(item.text)
            XCTAssertEqual(ids, item.input_ids, "\"\(escaped(item.text))\" at \(item.max_tokens) tokens")
        }
    }

    func testIdsEqualTheEmbeddingFixtures() throws {
        let vocabulary = try TestFiles.loadCheckpoint().vocabulary
        for (sentence, limit) in try ReferenceEmbeddings.all() {
            let ids = BertTokenizer(vocabulary: vocabulary, maximumTokens: limit).ids(sentence.text)
            XCTAssertEqual(ids, sentence.input_ids, "\"\(escaped(sentence.text))\"")
        }
    }

    /// Vocabulary keys are bytes: Swift's String equality (canonical
    /// equivalence) would let decomposed "é" find a precomposed entry.
    func testVocabularyMatchesBytesNotCanonicalEquivalence() throws {
        let vocabulary = try Vocabulary(tokens: ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "\u{E9}", "e"])
        let tokenizer = BertTokenizer(vocabulary: vocabulary)
        // The normaliser strips the accent of é, so the word is "e" either way…
        XCTAssertEqual(tokenizer.ids("\u{E9}"), [2, 5, 3])
        // …and a decomposed Hangul syllable does not find its precomposed entry.
        let hangul = try Vocabulary(tokens: ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "\u{D55C}"])
        XCTAssertEqual(BertTokenizer(vocabulary: hangul).ids("\u{D55C}"), [2, 1, 3])
    }
}
