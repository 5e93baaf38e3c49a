/// The runtime's version. Generated code checks compatibility at compile time
/// by naming `AdaptRuntimeCompatibilityVersion1`, the way swift-protobuf does.
public enum AdaptRuntimeVersion {
    /// Semantic version, the one `adaptc.version` written into every adapter
    /// file: by the generated API's saving and by the adaptc command line
    /// (`SwiftEmitter.adaptcVersion` is this constant).
    public static let string = "0.1.0"
}

/// Referenced by generated files: a file generated for an incompatible runtime
/// fails to compile instead of misbehaving.
public typealias AdaptRuntimeCompatibilityVersion1 = Void
