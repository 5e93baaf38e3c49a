/// BERT's uncased WordPiece tokenizer, as transformers' `BertTokenizer` runs it
/// for all-MiniLM-L6-v2: special tokens written in the text (`[MASK]`, …) are
/// kept whole; the rest is normalised (`BertNormalizer`), split into words
/// (`BertPreTokenizer`) and into word pieces (`WordPiece`); the ids are cut to
/// `maximumTokens - 2` and wrapped in `[CLS] … [SEP]`.
public struct BertTokenizer: Sendable {
    public let vocabulary: Vocabulary
    /// The most tokens a sentence gets, `[CLS]` and `[SEP]` included (the model
    /// has 512 positions; sentence-transformers runs this model with 256).
    public var maximumTokens: Int

    public init(vocabulary: Vocabulary, maximumTokens: Int = 512) {
        precondition(maximumTokens >= 2, "maximumTokens must leave room for [CLS] and [SEP]")
        self.vocabulary = vocabulary
        self.maximumTokens = maximumTokens
    }

    /// The token ids of `text`, `[CLS]` and `[SEP]` included.
    public func ids(_ text: String) -> [Int32] {
        let scalars = Array(text.unicodeScalars)
        let wordPiece = WordPiece(vocabulary: vocabulary)
        var ids: [Int32] = [vocabulary.classifier]
        var segmentStart = 0
        var index = 0
        func tokenizeSegment(upTo end: Int) {
            guard segmentStart < end else { return }
            let normalized = BertNormalizer.normalize(scalars[segmentStart..<end])
            for word in BertPreTokenizer.words(normalized) { wordPiece.append(word, to: &ids) }
        }
        while index < scalars.count {
            if let special = specialToken(in: scalars, at: index) {
                tokenizeSegment(upTo: index)
                ids.append(special.id)
                index += special.length
                segmentStart = index
            } else {
                index += 1
            }
        }
        tokenizeSegment(upTo: scalars.count)
        if ids.count > maximumTokens - 1 { ids.removeLast(ids.count - (maximumTokens - 1)) }
        ids.append(vocabulary.separator)
        return ids
    }

    private func specialToken(in scalars: [Unicode.Scalar], at index: Int) -> (id: Int32, length: Int)? {
        guard scalars[index] == "[" else { return nil }
        for (token, id) in vocabulary.specialTokens where index + token.count <= scalars.count {
            if scalars[index..<(index + token.count)].elementsEqual(token) { return (id, token.count) }
        }
        return nil
    }
}
