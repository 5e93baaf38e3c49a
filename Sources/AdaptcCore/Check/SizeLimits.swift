/// DESIGN §5: "a dimension above 1,048,576 or a tensor above 2³⁴ elements is an
/// error before anything is allocated". Sizes are multiplied with overflow
/// checks, so a spec with absurd numbers gets an error, never a trap.
public enum SizeLimits {
    /// The largest dimension (a module's out or in, a layer count, a rank, a token count).
    public static let maximumDimension = 1 << 20
    /// The largest tensor, in elements (64 GiB of float32).
    public static let maximumTensorElements = 1 << 34

    /// ∏ sizes, or nil when it does not fit in Int.
    public static func product(_ sizes: [Int]) -> Int? {
        var result = 1
        for size in sizes {
            let (next, overflow) = result.multipliedReportingOverflow(by: size)
            if overflow { return nil }
            result = next
        }
        return result
    }

    /// ∏ sizes, or Int.max when it does not fit: for bounds such as a tensor-train
    /// bond's min(∏ left, ∏ right), where "huge" is all that matters.
    public static func saturatingProduct(_ sizes: [Int]) -> Int { product(sizes) ?? Int.max }

    /// Whether a tensor of these sizes stays within maximumTensorElements.
    public static func fits(_ sizes: [Int]) -> Bool {
        guard let count = product(sizes) else { return false }
        return count <= maximumTensorElements
    }

    /// `1048576` written for messages as `1,048,576`.
    static func grouped(_ value: Int) -> String {
        let digits = String(value.magnitude)
        var out = ""
        for (i, c) in digits.enumerated() {
            if i > 0, (digits.count - i) % 3 == 0 { out.append(",") }
            out.append(c)
        }
        return value < 0 ? "-" + out : out
    }
}
