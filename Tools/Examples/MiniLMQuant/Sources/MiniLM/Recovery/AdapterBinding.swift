import AdaptRuntime

/// Which of a generated adapter's modules is which encoder map: the spec's
/// module names are the checkpoint's (`attention.self.query`, …).
public struct AdapterBinding<Adapter: GeneratedAdapter> {
    public let modules: [EncoderMap: Adapter.Module]

    public struct UnknownModule: Error, CustomStringConvertible { public let description: String }

    public init() throws {
        var modules: [EncoderMap: Adapter.Module] = [:]
        for module in Adapter.Module.allCases {
            let name = Adapter.moduleName(module)
            guard let map = EncoderMap(rawValue: name) else {
                throw UnknownModule(description: "\(Adapter.specName): module '\(name)' is not a MiniLM linear map "
                                    + "(one of \(EncoderMap.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            modules[map] = module
        }
        self.modules = modules
    }

    public var maps: [EncoderMap] { EncoderMap.allCases.filter { modules[$0] != nil } }
}

/// The quantised model's maps plus the adapter: `y += x·ΔWᵀ` after each
/// adapted map, as an app runs it.
public final class AdapterApplication<Adapter: GeneratedAdapter>: MapObserver {
    public let adapter: Adapter
    public let binding: AdapterBinding<Adapter>

    public init(_ adapter: Adapter, _ binding: AdapterBinding<Adapter>) {
        self.adapter = adapter
        self.binding = binding
    }

    public func mapped(layer: Int, map: EncoderMap, linear: any LinearMap, rows: Int, input: UnsafePointer<Float>,
                output: UnsafeMutablePointer<Float>) throws {
        guard let module = binding.modules[map] else { return }
        let shape = Adapter.shape(of: module)
        try adapter.forward(layer: layer, module: module, x: UnsafeBufferPointer(start: input, count: rows * shape.in),
                            rows: rows, y: UnsafeMutableBufferPointer(start: output, count: rows * shape.out))
    }
}
