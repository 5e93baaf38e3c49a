import AdaptRuntime
import MiniLM

/// Which of a generated adapter's modules is which encoder map: the spec's
/// module names are the checkpoint's (`attention.self.query`, …).
struct AdapterBinding<Adapter: GeneratedAdapter> {
    let modules: [EncoderMap: Adapter.Module]

    struct UnknownModule: Error, CustomStringConvertible { let description: String }

    init() throws {
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

    var maps: [EncoderMap] { EncoderMap.allCases.filter { modules[$0] != nil } }
}

/// The quantised model's maps plus the adapter: `y += x·ΔWᵀ` after each
/// adapted map, as an app runs it.
final class AdapterApplication<Adapter: GeneratedAdapter>: MapObserver {
    let adapter: Adapter
    let binding: AdapterBinding<Adapter>

    init(_ adapter: Adapter, _ binding: AdapterBinding<Adapter>) {
        self.adapter = adapter
        self.binding = binding
    }

    func mapped(layer: Int, map: EncoderMap, linear: any LinearMap, rows: Int, input: UnsafePointer<Float>,
                output: UnsafeMutablePointer<Float>) throws {
        guard let module = binding.modules[map] else { return }
        let shape = Adapter.shape(of: module)
        try adapter.forward(layer: layer, module: module, x: UnsafeBufferPointer(start: input, count: rows * shape.in),
                            rows: rows, y: UnsafeMutableBufferPointer(start: output, count: rows * shape.out))
    }
}
