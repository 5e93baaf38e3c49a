/// "Did you mean …?" hints for misspelt keys, names and choices: the closest
/// candidate by edit distance, if it is close enough to be a likely typo.
enum DidYouMean {
    /// The candidate nearest to `word`, or nil when none is plausibly what was meant.
    /// Case is ignored; ties go to the earlier candidate, so hints are deterministic.
    static func suggestion(for word: String, among candidates: [String]) -> String? {
        let lowered = word.lowercased()
        var best: (candidate: String, distance: Int)?
        for candidate in candidates where candidate != word {
            let d = distance(lowered, candidate.lowercased())
            // A typo changes a few characters: one edit per three letters (at least one),
            // so `rnak` suggests `rank` but `base` does not suggest `name`.
            guard d <= max(1, min(word.count, candidate.count) / 3) else { continue }
            if best == nil || d < best!.distance { best = (candidate, d) }
        }
        return best?.candidate
    }

    /// `"; did you mean 'X'?"`, or "" when there is no plausible candidate.
    static func hint(for word: String, among candidates: [String]) -> String {
        suggestion(for: word, among: candidates).map { "; did you mean '\($0)'?" } ?? ""
    }

    /// Optimal string alignment distance: Levenshtein plus adjacent transpositions,
    /// so `rnak` is one edit from `rank`.
    static func distance(_ a: String, _ b: String) -> Int {
        let a = Array(a.unicodeScalars), b = Array(b.unicodeScalars)
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var previous2 = [Int](repeating: 0, count: b.count + 1)
        var previous = Array(0...b.count)
        var current = [Int](repeating: 0, count: b.count + 1)
        for i in 1...a.count {
            current[0] = i
            for j in 1...b.count {
                let substitution = a[i - 1] == b[j - 1] ? 0 : 1
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + substitution)
                if i > 1, j > 1, a[i - 1] == b[j - 2], a[i - 2] == b[j - 1] {
                    current[j] = min(current[j], previous2[j - 2] + 1)
                }
            }
            (previous2, previous, current) = (previous, current, previous2)
        }
        return previous[b.count]
    }
}
