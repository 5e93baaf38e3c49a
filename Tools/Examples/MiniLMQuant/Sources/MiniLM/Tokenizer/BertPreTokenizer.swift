/// Splits normalised text into words: at whitespace (dropped) and around each
/// punctuation scalar (kept as a word of its own), as `tokenizers`'
/// `BertPreTokenizer` does.
enum BertPreTokenizer {
    static func words(_ text: [Unicode.Scalar]) -> [ArraySlice<Unicode.Scalar>] {
        var words: [ArraySlice<Unicode.Scalar>] = []
        var start = 0
        for (index, scalar) in text.enumerated() {
            let isSpace = CharacterClasses.isWhitespace(scalar)
            if isSpace || CharacterClasses.isPunctuation(scalar) {
                if start < index { words.append(text[start..<index]) }
                if !isSpace { words.append(text[index...index]) }
                start = index + 1
            }
        }
        if start < text.count { words.append(text[start...]) }
        return words
    }
}
