import Foundation

/// BERT's normalisation of uncased text, in `tokenizers`' order: clean the
/// text, put spaces around CJK ideographs, decompose (NFD) and drop the
/// non-spacing marks (accents), lower-case each scalar.
enum BertNormalizer {
    static func normalize(_ text: some Sequence<Unicode.Scalar>) -> [Unicode.Scalar] {
        var cleaned = String.UnicodeScalarView()
        for scalar in text where !CharacterClasses.isDroppedByCleaning(scalar) {
            if CharacterClasses.isWhitespace(scalar) {
                cleaned.append(" ")
            } else if CharacterClasses.isCJKIdeograph(scalar) {
                cleaned.append(" ")
                cleaned.append(scalar)
                cleaned.append(" ")
            } else {
                cleaned.append(scalar)
            }
        }
        let decomposed = String(cleaned).decomposedStringWithCanonicalMapping
        var normalized: [Unicode.Scalar] = []
        normalized.reserveCapacity(decomposed.unicodeScalars.count)
        for scalar in decomposed.unicodeScalars where scalar.properties.generalCategory != .nonspacingMark {
            // Per scalar, without context, as `tokenizers` does (so a word-final
            // capital sigma becomes σ, not ς).
            if scalar.isASCII {
                normalized.append(Unicode.Scalar(UInt8(ascii: scalar).lowercasedASCII))
            } else {
                normalized.append(contentsOf: scalar.properties.lowercaseMapping.unicodeScalars)
            }
        }
        return normalized
    }
}

private extension UInt8 {
    init(ascii scalar: Unicode.Scalar) { self = UInt8(truncatingIfNeeded: scalar.value) }
    var lowercasedASCII: UInt8 { (0x41...0x5A).contains(self) ? self + 0x20 : self }
}
