import Foundation

/// Real English sentences from text files this machine ships: the licence
/// texts of Debian's `base-files` (`/usr/share/common-licenses`), present on
/// every Debian system. Training and held-out sentences come from different
/// texts, so the held-out score is on sentences the adapter never saw.
enum Corpus {
    static let folder = "/usr/share/common-licenses"
    /// The GNU licences train; the Apache, Mozilla and Artistic licences are held out.
    static let training = ["GPL-3", "GPL-2", "GFDL-1.3"]
    static let heldOut = ["Apache-2.0", "MPL-2.0", "Artistic"]

    struct MissingText: Error, CustomStringConvertible { let description: String }

    /// The texts' sentences: runs of text ended by `.`, `;`, `?` or `!`
    /// (whitespace collapsed), of 6 to 60 words, each once, in file order.
    static func sentences(_ names: [String]) throws -> [String] {
        var seen = Set<String>(), result: [String] = []
        for name in names {
            let path = folder + "/" + name
            guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
                throw MissingText(description: "\(path): cannot read the text (Debian's base-files ships it)")
            }
            var current = ""
            for character in text {
                current.append(character)
                guard ".;?!".contains(character) else { continue }
                let words = current.split(whereSeparator: \.isWhitespace)
                current = ""
                guard (6...60).contains(words.count) else { continue }
                let sentence = words.joined(separator: " ")
                if seen.insert(sentence).inserted { result.append(sentence) }
            }
        }
        return result
    }
}
