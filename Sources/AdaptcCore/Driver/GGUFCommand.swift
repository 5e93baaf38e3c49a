import AdaptRuntime
import Foundation

/// `adaptc export-gguf SPEC --adapter A --arch ARCH [--heads H[:KV]] [--dtype f32|f16] -o FILE.gguf`:
/// a llama.cpp LoRA adapter, written to a temporary file and renamed.
public enum ExportGGUFCommand {
    public static func run(specPath: String, adapterPath: String, architecture: String, heads: String?,
                           dtype: String, output: String) throws -> [String] {
        guard let type = GGUFExport.TensorType(rawValue: dtype) else {
            throw UserError("--dtype \"\(dtype)\": export-gguf writes f32 or f16")
        }
        let parsedHeads = try heads.map { try GGUFExport.Heads(parsing: $0) }
        let exported = try GGUFExport.build(specPath: specPath, adapterPath: adapterPath, architecture: architecture,
                                            heads: parsedHeads, type: type)
        try exported.writer.write(to: output)
        let folded = exported.folded == 0 ? "" : ", scale folded into B for \(exported.folded)"
        return ["export-gguf: \(exported.pairs) pairs (\(type.rawValue.uppercased()), alpha \(exported.alpha)\(folded)) → \(output)"]
    }
}
