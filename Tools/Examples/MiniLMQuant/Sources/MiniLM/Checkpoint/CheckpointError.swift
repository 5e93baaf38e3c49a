/// A checkpoint folder that cannot be used (missing file or tensor, wrong
/// shape, bad config): a one-line message naming the file and what is wrong.
public struct CheckpointError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}
