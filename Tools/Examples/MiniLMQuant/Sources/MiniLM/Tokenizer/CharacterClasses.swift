/// The character classes of BERT's tokenizer, as the `tokenizers` library
/// (what transformers' `BertTokenizer` runs) defines them in its
/// `BertNormalizer` and `BertPreTokenizer`.
enum CharacterClasses {
    /// Dropped by text cleaning: NUL, U+FFFD and the "other" categories Cc, Cf and
    /// Co, except tab, newline and carriage return (whitespace). Unassigned code
    /// points (Cn) are kept: `tokenizers` keeps them (they become `[UNK]`), where
    /// the old Python tokenizer dropped them. Surrogates cannot occur in a String.
    static func isDroppedByCleaning(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0, 0xFFFD: return true
        case 0x09, 0x0A, 0x0D: return false
        default:
            switch scalar.properties.generalCategory {
            case .control, .format, .privateUse: return true
            default: return false
            }
        }
    }

    /// Tab, newline, carriage return, and every scalar with Unicode's White_Space
    /// property (Rust's `char::is_whitespace`).
    static func isWhitespace(_ scalar: Unicode.Scalar) -> Bool {
        scalar.value == 0x09 || scalar.value == 0x0A || scalar.value == 0x0D || scalar.properties.isWhitespace
    }

    /// ASCII punctuation (!"#$%&'()*+,-./:;<=>?@[\]^_`{|}~, which includes the
    /// symbols $+<=>^`|~) and every Unicode punctuation category (P*).
    static func isPunctuation(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 33...47, 58...64, 91...96, 123...126: return true
        default:
            switch scalar.properties.generalCategory {
            case .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation,
                 .initialPunctuation, .finalPunctuation, .otherPunctuation:
                return true
            default: return false
            }
        }
    }

    /// The CJK Unified Ideographs blocks BERT splits into one token each
    /// (Hangul, Hiragana and Katakana are not among them).
    static func isCJKIdeograph(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x4E00...0x9FFF, 0x3400...0x4DBF, 0x20000...0x2A6DF, 0x2A700...0x2B73F,
             0x2B740...0x2B81F, 0x2B820...0x2CEAF, 0xF900...0xFAFF, 0x2F800...0x2FA1F:
            return true
        default: return false
        }
    }
}
