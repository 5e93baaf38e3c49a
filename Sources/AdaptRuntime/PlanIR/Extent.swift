/// A size or offset that may grow with the number of token rows `n`:
/// `constant + perToken·n`. Shapes that do not touch tokens have perToken 0.
public struct Extent: Hashable, Sendable, CustomStringConvertible, Codable {
    public var constant: Int
    public var perToken: Int

    public init(_ constant: Int, perToken: Int = 0) {
        self.constant = constant
        self.perToken = perToken
    }

    /// The token count itself.
    public static let tokens = Extent(0, perToken: 1)
    public static func fixed(_ value: Int) -> Extent { Extent(value) }

    public var isFixed: Bool { perToken == 0 }

    @inline(__always)
    public func value(tokens n: Int) -> Int { constant + perToken * n }

    public static func + (a: Extent, b: Extent) -> Extent {
        Extent(a.constant + b.constant, perToken: a.perToken + b.perToken)
    }

    public static func * (a: Extent, k: Int) -> Extent { Extent(a.constant * k, perToken: a.perToken * k) }

    /// Product of two extents; at most one may depend on n (shapes are linear in n).
    public static func * (a: Extent, b: Extent) -> Extent {
        precondition(a.isFixed || b.isFixed, "extent product would be quadratic in n")
        return a.isFixed ? b * a.constant : a * b.constant
    }

    /// An extent at least as large as both for every n ≥ 0 (componentwise max),
    /// e.g. a workspace big enough for each of several programs.
    public static func atLeast(_ a: Extent, _ b: Extent) -> Extent {
        Extent(Swift.max(a.constant, b.constant), perToken: Swift.max(a.perToken, b.perToken))
    }

    public var description: String {
        switch (constant, perToken) {
        case (let c, 0): return String(c)
        case (0, 1): return "n"
        case (0, let p): return "\(p)n"
        case (let c, 1): return "n+\(c)"
        case (let c, let p): return "\(p)n+\(c)"
        }
    }
}
