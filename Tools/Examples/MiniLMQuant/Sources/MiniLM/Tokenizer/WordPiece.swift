/// Greedy longest-match-first WordPiece (Schuster & Nakajima 2012, as BERT
/// uses it): the longest vocabulary prefix of the word, then the longest
/// `##`-continuation of the rest, and so on; a word with a piece that matches
/// nothing, or longer than `maximumWordLength` scalars, is one `[UNK]`.
struct WordPiece {
    let vocabulary: Vocabulary
    var maximumWordLength = 100

    func append(_ word: ArraySlice<Unicode.Scalar>, to ids: inout [Int32]) {
        guard word.count <= maximumWordLength else {
            ids.append(vocabulary.unknown)
            return
        }
        let scalars = Array(word)
        var pieces: [Int32] = []
        var start = 0
        var key: [UInt8] = []
        while start < scalars.count {
            var end = scalars.count
            var match: Int32?
            while start < end {
                key.removeAll(keepingCapacity: true)
                if start > 0 { key.append(contentsOf: [0x23, 0x23]) }   // "##"
                for scalar in scalars[start..<end] { key.append(contentsOf: UTF8.encode(scalar)!) }
                if let id = vocabulary.id(utf8: key) {
                    match = id
                    break
                }
                end -= 1
            }
            guard let id = match else {
                ids.append(vocabulary.unknown)
                return
            }
            pieces.append(id)
            start = end
        }
        ids.append(contentsOf: pieces)
    }
}
