/// A set of token counts n ≥ 1, an integer range `lower...upper` (no upper
/// bound when `upper` is nil): where a few conditions linear in n all hold.
/// Every size in a plan is `constant + perToken·n`, so "for some n" and "for
/// every n" questions about them (do two views meet, does a leading dimension
/// cover its row) are decided exactly by intersecting such ranges, never by
/// trying a few n.
public struct TokenCounts: Hashable, Sendable {
    public private(set) var lower: Int
    public private(set) var upper: Int?

    /// Every n ≥ 1 (a program whose sizes grow with n does not run for n = 0).
    public static let all = TokenCounts(lower: 1, upper: nil)

    public var isEmpty: Bool { upper.map { $0 < lower } ?? false }

    /// Keeps the n where `e(n) > 0`.
    public mutating func require(positive e: Extent) {
        let (c, p) = (e.constant, e.perToken)
        if p == 0 {
            if c <= 0 { upper = lower - 1 }
        } else if p > 0 {
            lower = Swift.max(lower, Self.floorDivide(-c, p) + 1)  // n > −c/p
        } else {
            let below = -Self.floorDivide(-c, -p) - 1  // n < c/|p|: n ≤ ⌈c/|p|⌉ − 1
            upper = upper.map { Swift.min($0, below) } ?? below
        }
    }

    /// These counts where `e(n) > 0`.
    public func requiring(positive e: Extent) -> TokenCounts {
        var counts = self
        counts.require(positive: e)
        return counts
    }

    /// Whether `e(n) > 0` for every n here (true when there are none).
    public func allPositive(_ e: Extent) -> Bool {
        guard !isEmpty else { return true }
        guard e.value(tokens: lower) > 0 else { return false }
        if let upper { return e.value(tokens: upper) > 0 }
        return e.perToken >= 0
    }

    /// ⌊a / b⌋ for b > 0 (Swift's `/` rounds towards zero).
    static func floorDivide(_ a: Int, _ b: Int) -> Int {
        let q = a / b
        return (a % b != 0 && a < 0) ? q - 1 : q
    }
}

extension Extent {
    public static func - (a: Extent, b: Extent) -> Extent {
        Extent(a.constant - b.constant, perToken: a.perToken - b.perToken)
    }

    /// `self ≥ other` for every token count n ≥ 1.
    public func isAtLeast(_ other: Extent) -> Bool {
        TokenCounts.all.allPositive(self - other + .fixed(1))
    }
}
