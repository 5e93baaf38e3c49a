"""llama.cpp itself runs an export-gguf adapter (run by Tools/check-gguf when
llama-cpp-python is installed; it compiles llama.cpp from its source package).

A tiny random LLaMA base (the shapes of Tests/Fixtures/gguf/tiny-llama.adapt.yaml:
hidden 32, 4 query / 2 kv heads of dim 8, feed-forward 48, 2 layers, vocab
64) is written in Hugging Face's layout; `adaptc merge` merges the native
spec's adapter into it. Both checkpoints become GGUF models the way
convert_hf_to_gguf.py's LlamaModel writes them (its tensor names through
gguf-py's TensorNameMap, q/k rows permuted by its `permute`, the llama
hparams; a small SentencePiece-style vocabulary, since the checkpoint has no
tokenizer; torch/transformers are not needed). llama.cpp then evaluates the
same tokens on base + `--lora adapter.gguf` (export-gguf, F32 and F16) and on
the merged model: the logits must agree to 1e-5 relative (F32; 2e-3 for F16
factors). A control adapter with q/k rows of B left in Hugging Face order
must not agree, so the check can fail.
Usage: check_llamacpp.py ADAPTC WORKDIR
"""
import os
import subprocess
import sys

import gguf
import numpy as np
from llama_cpp import Llama
from safetensors import safe_open
from safetensors.numpy import load_file, save_file

ADAPTC, WORK = sys.argv[1], sys.argv[2]
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SPEC = os.path.join(ROOT, "Tests/Fixtures/gguf/tiny-llama.adapt.yaml")
HIDDEN, HEADS, KV_HEADS, FFN, LAYERS, VOCAB = 32, 4, 2, 48, 2, 64
HEAD_DIM = HIDDEN // HEADS
failures = []


def adaptc(*args):
    run = subprocess.run([ADAPTC, *args], capture_output=True, text=True)
    if run.returncode != 0:
        sys.exit(f"adaptc {' '.join(args)} failed:\n{run.stderr}")
    return run.stdout


def permute(w, n_head, n_head_kv):
    """convert_hf_to_gguf.py's LlamaModel.permute."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def hf_base(path):
    random = np.random.default_rng(3)
    t = {"model.embed_tokens.weight": random.normal(0, 0.5, (VOCAB, HIDDEN)),
         "model.norm.weight": 1 + random.normal(0, 0.1, HIDDEN),
         "lm_head.weight": random.normal(0, 0.2, (VOCAB, HIDDEN))}
    shapes = {"self_attn.q_proj": (HIDDEN, HIDDEN), "self_attn.k_proj": (KV_HEADS * HEAD_DIM, HIDDEN),
              "self_attn.v_proj": (KV_HEADS * HEAD_DIM, HIDDEN), "self_attn.o_proj": (HIDDEN, HIDDEN),
              "mlp.gate_proj": (FFN, HIDDEN), "mlp.up_proj": (FFN, HIDDEN), "mlp.down_proj": (HIDDEN, FFN)}
    for layer in range(LAYERS):
        p = f"model.layers.{layer}."
        t[p + "input_layernorm.weight"] = 1 + random.normal(0, 0.1, HIDDEN)
        t[p + "post_attention_layernorm.weight"] = 1 + random.normal(0, 0.1, HIDDEN)
        for module, shape in shapes.items():
            t[p + module + ".weight"] = random.normal(0, 1 / np.sqrt(shape[1]), shape)
    save_file({k: v.astype(np.float32) for k, v in t.items()}, path)


def to_gguf(hf_path, out):
    """The checkpoint as convert_hf_to_gguf.py's LlamaModel writes it (F32)."""
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, LAYERS)
    writer = gguf.GGUFWriter(out, "llama")
    writer.add_type(gguf.GGUFType.MODEL)
    writer.add_name("tiny-llama")
    writer.add_block_count(LAYERS)
    writer.add_context_length(256)
    writer.add_embedding_length(HIDDEN)
    writer.add_feed_forward_length(FFN)
    writer.add_head_count(HEADS)
    writer.add_head_count_kv(KV_HEADS)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_rope_dimension_count(HEAD_DIM)
    writer.add_vocab_size(VOCAB)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    tokens = ["<unk>", "<s>", "</s>", "<0x0A>"] + [f"\u2581t{i}" for i in range(VOCAB - 4)]
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores([0.0] * VOCAB)
    writer.add_token_types([2, 3, 3, 6] + [1] * (VOCAB - 4))
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_unk_token_id(0)
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    for name, data in load_file(hf_path).items():
        if name.endswith("q_proj.weight"):
            data = permute(data, HEADS, HEADS)
        if name.endswith("k_proj.weight"):
            data = permute(data, HEADS, KV_HEADS)
        writer.add_tensor(names.get_name(name, try_suffixes=(".weight", ".bias")), data.astype(np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def unpermuted(adapter, out):
    """The adapter with q/k rows of B put back in HF order: a control that must fail."""
    reader = gguf.GGUFReader(adapter)
    writer = gguf.GGUFWriter(out, "llama")
    writer.add_custom_alignment(32)
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, float(reader.fields[gguf.Keys.Adapter.LORA_ALPHA].contents()))
    for tensor in reader.tensors:
        data = np.array(tensor.data).reshape(list(reversed([int(n) for n in tensor.shape])))
        if tensor.name.endswith(("attn_q.weight.lora_b", "attn_k.weight.lora_b")):
            heads = HEADS if "attn_q" in tensor.name else KV_HEADS
            rows, rank = data.shape
            # the inverse of permute: [heads, d/2, 2] → [heads, 2, d/2]
            data = data.reshape(heads, rows // heads // 2, 2, rank).swapaxes(1, 2).reshape(rows, rank)
        writer.add_tensor(tensor.name, data)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def logits(model, lora=None):
    # F32 K/V cache (type 0): the default F16 cache rounds k and v, on both sides differently.
    llm = Llama(model_path=model, lora_path=lora, n_ctx=256, n_batch=32, logits_all=True, n_threads=1, verbose=False,
                seed=0, type_k=0, type_v=0)
    tokens = [1, 7, 19, 33, 48, 5, 60, 12]
    llm.eval(tokens)
    return np.array(llm.scores[:len(tokens)], dtype=np.float64)


# The adapter: random B (init leaves it zero).
adapter = os.path.join(WORK, "tiny.safetensors")
adaptc("init", SPEC, "-o", adapter, "--seed", "5")
with safe_open(adapter, "np") as f:
    metadata = f.metadata()
tensors = load_file(adapter)
random = np.random.default_rng(7)
for key in sorted(tensors):
    if key.endswith(".B"):
        tensors[key] = random.uniform(-0.5, 0.5, tensors[key].shape).astype(np.float32)
save_file(tensors, adapter, metadata=metadata)

base_hf, merged_hf = os.path.join(WORK, "base.safetensors"), os.path.join(WORK, "merged.safetensors")
hf_base(base_hf)
adaptc("merge", SPEC, "--adapter", adapter, "--base", base_hf, "-o", merged_hf)
base, merged = os.path.join(WORK, "base.gguf"), os.path.join(WORK, "merged.gguf")
to_gguf(base_hf, base)
to_gguf(merged_hf, merged)

want = logits(merged)
plain = logits(base)
scale = np.max(np.abs(want))
print(f"merged vs base logits differ by {np.max(np.abs(want - plain)) / scale:.3g} (what the adapter adds)")
for dtype, tolerance in [("f32", 1e-5), ("f16", 2e-3)]:
    lora = os.path.join(WORK, f"tiny-{dtype}.gguf")
    adaptc("export-gguf", SPEC, "--adapter", adapter, "--arch", "llama", "--heads", f"{HEADS}:{KV_HEADS}", "--dtype", dtype, "-o", lora)
    error = np.max(np.abs(logits(base, lora) - want)) / scale
    status = "ok  " if error <= tolerance else "FAIL"
    if error > tolerance:
        failures.append(dtype)
    print(f"{status} llama.cpp base + {dtype} adapter vs merged: max relative error {error:.3g} (tolerance {tolerance})")

control = os.path.join(WORK, "control.gguf")
unpermuted(os.path.join(WORK, "tiny-f32.gguf"), control)
error = np.max(np.abs(logits(base, control) - want)) / scale
if error <= 1e-5:
    failures.append("control")
    print(f"FAIL the control adapter (q/k rows of B in HF order) agrees too: {error:.3g}")
else:
    print(f"ok   control adapter with q/k rows of B in HF order: error {error:.3g}, as it must")
sys.exit(1 if failures else 0)
