import Foundation
import Yams

/// A group's `layers:` — `all`, a list `[0, 3, 5]`, or a Swift-style range
/// string `"0..<6"` / `"6...11"`. Indices are kept as written (order and
/// duplicates included) so that Check can point at a bad one; Check sorts them.
enum LayerSelection {
    /// The largest layer count a range may reach before it is expanded: the
    /// dimension limit of DESIGN §5, so a typo like `"0..<99999999999"` does not
    /// allocate a huge array.
    static let maximumLayerCount = SizeLimits.maximumDimension

    /// `all`: every layer of the model, the default. Empty without a valid
    /// model.layers (Parse or Check reports why).
    static func all(modelLayers: Int?) -> [Int] {
        guard let count = modelLayers, count > 0, count <= maximumLayerCount else { return [] }
        return Array(0..<count)
    }

    /// The indices with their locations (a range's indices all point at the range).
    static func parse(_ entry: NodeReader.Entry, modelLayers: Int?,
                      reader: inout NodeReader) -> [(value: Int, location: SourceLocation)]? {
        let expected = "'layers' must be all, a list of layer indices, or a range such as \"0..<6\" or \"6...11\""
        switch entry.value {
        case .sequence:
            return reader.intList(entry)
        case .scalar(let scalar):
            let value = YAMLScalar(scalar)
            guard case .string(let text) = value else {
                var hint = ""
                if case .int(let layer) = value { hint = " (write [\(layer)] for one layer)" }
                reader.error("\(expected), found \(reader.found(entry.value))\(hint)", at: entry.valueLocation)
                return nil
            }
            if text == "all" {
                return all(modelLayers: modelLayers).map { ($0, entry.valueLocation) }
            }
            guard let bounds = rangeBounds(text) else {
                reader.error("\(expected), found '\(text)'", at: entry.valueLocation)
                return nil
            }
            let upper = bounds.closed ? min(bounds.upper, Int.max - 1) + 1 : bounds.upper
            guard bounds.lower < upper else {
                reader.error("layer range '\(text)' is empty", at: entry.valueLocation)
                return nil
            }
            guard upper <= maximumLayerCount else {
                reader.error("layer range '\(text)' goes beyond \(maximumLayerCount) layers", at: entry.valueLocation)
                return nil
            }
            // Without a valid model.layers (already an error) the range cannot be
            // checked: nothing is expanded. Past a known model: the same one line
            // Check would give, without expanding first (a range may name a million layers).
            guard let count = modelLayers, count > 0, count <= maximumLayerCount else { return [] }
            if upper > count {
                let first = max(bounds.lower, count)
                let what = first == upper - 1 ? "layer \(first) is" : "layers \(first)..<\(upper) are"
                reader.error("\(what) out of range: the model has \(count) layers (0..<\(count))", at: entry.valueLocation)
                return nil
            }
            return (bounds.lower..<upper).map { ($0, entry.valueLocation) }
        default:
            reader.error("\(expected), found \(reader.found(entry.value))", at: entry.valueLocation)
            return nil
        }
    }

    /// The bounds of `a..<b` or `a...b` (non-negative decimal integers, spaces
    /// allowed around the operator); nil for anything else.
    static func rangeBounds(_ text: String) -> (lower: Int, upper: Int, closed: Bool)? {
        for (op, closed) in [("..<", false), ("...", true)] {
            let parts = text.components(separatedBy: op)
            guard parts.count == 2 else { continue }
            let bounds = parts.map { $0.trimmingCharacters(in: .whitespaces) }
            guard bounds.allSatisfy({ !$0.isEmpty && $0.allSatisfy { $0.isASCII && $0.isNumber } }),
                  let lower = Int(bounds[0]), let upper = Int(bounds[1]) else { return nil }
            return (lower, upper, closed)
        }
        return nil
    }
}
