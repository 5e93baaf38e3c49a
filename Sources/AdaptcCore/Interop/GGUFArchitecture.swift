/// llama.cpp's names for the linear maps of one architecture, as its
/// converter (`convert_hf_to_gguf.py`, through gguf-py's `TensorNameMap`)
/// names the Hugging Face modules: `model.layers.L.self_attn.q_proj` becomes
/// `blk.L.attn_q`, BERT's `encoder.layer.L.attention.self.query` likewise.
/// Only architectures whose converter passes these maps through unchanged
/// are here (qwen2's `Qwen2Model.modify_tensors` and BERT's only rename),
/// and llama, whose q/k row permutation (`LlamaModel.permute`)
/// `permutesQueryKey` marks; a fused-qkv architecture (phi3, gpt2, falcon)
/// would need its three maps concatenated and is not here.
public struct GGUFArchitecture: Sendable {
    /// `general.architecture`.
    public let name: String
    /// Whether the converter reorders q's and k's output rows by head.
    public let permutesQueryKey: Bool
    /// llama.cpp's tensor base names this architecture has.
    let tensors: Set<String>

    /// The Hugging Face module path below the layer (`self_attn.q_proj`,
    /// `attention.self.query`) or its last part alone → llama.cpp's base name.
    static let moduleNames: [(path: String, tensor: String)] = [
        ("self_attn.q_proj", "attn_q"), ("self_attn.k_proj", "attn_k"), ("self_attn.v_proj", "attn_v"),
        ("self_attn.o_proj", "attn_output"), ("mlp.gate_proj", "ffn_gate"), ("mlp.up_proj", "ffn_up"),
        ("mlp.down_proj", "ffn_down"),
        ("q_proj", "attn_q"), ("k_proj", "attn_k"), ("v_proj", "attn_v"), ("o_proj", "attn_output"),
        ("gate_proj", "ffn_gate"), ("up_proj", "ffn_up"), ("down_proj", "ffn_down"),
        ("attention.self.query", "attn_q"), ("attention.self.key", "attn_k"), ("attention.self.value", "attn_v"),
        ("attention.output.dense", "attn_output"), ("intermediate.dense", "ffn_up"), ("output.dense", "ffn_down"),
    ]

    static let decoder: Set<String> = ["attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"]

    /// The architectures export-gguf writes, by `general.architecture`.
    public static let known: [GGUFArchitecture] = [
        GGUFArchitecture(name: "llama", permutesQueryKey: true, tensors: decoder),
        GGUFArchitecture(name: "qwen2", permutesQueryKey: false, tensors: decoder),
        GGUFArchitecture(name: "bert", permutesQueryKey: false, tensors: ["attn_q", "attn_k", "attn_v", "attn_output", "ffn_up", "ffn_down"]),
    ]

    public static func named(_ name: String) -> GGUFArchitecture? { known.first { $0.name == name } }

    /// llama.cpp's base name for a module path, nil where this architecture has none.
    public func tensor(forModulePath path: String) -> String? {
        guard let tensor = Self.moduleNames.first(where: { $0.path == path })?.tensor, tensors.contains(tensor) else { return nil }
        return tensor
    }
}
