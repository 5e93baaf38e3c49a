/// The runtime's version. Generated code checks it at compile time
/// (`AdaptRuntime.requireVersion1`) the way swift-protobuf does.
public enum AdaptRuntimeVersion {
    /// Semantic version; written as `adaptc.version` into saved adapter files.
    public static let string = "0.1.0"
}

/// Referenced by generated files: a file generated for an incompatible runtime
/// fails to compile instead of misbehaving.
public typealias AdaptRuntimeCompatibilityVersion1 = Void
