"""export-gguf against llama.cpp's own reader and converter logic (run by
Tools/check-gguf, not by swift test).

For each case a PEFT adapter folder is at hand: a PEFT fixture
(Tests/Fixtures/peft, written by PEFT itself), or the native two-group
LLaMA spec (Tests/Fixtures/gguf/tiny-llama.adapt.yaml) with random factors,
written as PEFT files by `adaptc export-peft`. adaptc exports the same
adapter with `adaptc export-gguf` (F32 and F16); llama.cpp's `gguf` package
(gguf-py, its Python reader and writer) reads the file, and it is compared
with what `convert_lora_to_gguf.py` writes for the PEFT folder, its logic
redone here from its source with gguf-py's own pieces:

- names: the PEFT key less `base_model.model.` and `.lora_A.weight`, mapped
  by gguf-py's `TensorNameMap` for the architecture (what the converter's
  `map_tensor_name` does), then `.lora_a` / `.lora_b`;
- llama: B of q_proj / k_proj permuted by `LlamaModel.permute` (reshape to
  [heads, 2, rows/heads/2, r], swap axes 1 and 2), k with the kv heads;
- shapes: the torch shapes reversed (gguf-py's `ne`); dtype F32 or F16 as
  `--outtype`, values `numpy.astype(float16)` (gguf.quants for F16);
- metadata: general.architecture, general.type = adapter, adapter.type =
  lora, adapter.lora.alpha = lora_alpha (FLOAT32),
  general.quantization_version; general.alignment = 32 (the converter
  leaves it at its default, adaptc states it).

One difference is intended: llama.cpp scales each pair by alpha/r, which the
converter writes unchanged even where PEFT's scale differs (rsLoRA,
alpha_pattern); adaptc folds PEFT's scale / (alpha/r) into B there, so the
expected B is the converter's times that ratio (PEFT's scales from the
fixture's meta.json, or from the exported adapter_config.json by PEFT's rule).

Finally the file is rebuilt with gguf-py's GGUFWriter from the expected
tensors and metadata (in adaptc's tensor order) and must equal adaptc's
byte for byte: header, key/values, tensor infos, alignment padding.
Usage: check_gguf.py ADAPTC WORKDIR
"""
import json
import math
import os
import re
import subprocess
import sys

import gguf
import numpy as np
from safetensors import safe_open
from safetensors.numpy import load_file, save_file

ADAPTC, WORK = sys.argv[1], sys.argv[2]
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
failures = []
checked_tensors = 0


def adaptc(*args):
    run = subprocess.run([ADAPTC, *args], capture_output=True, text=True)
    if run.returncode != 0:
        sys.exit(f"adaptc {' '.join(args)} failed:\n{run.stderr}")
    return run.stdout


def fail(message):
    failures.append(message)
    print("FAIL " + message)


def peft_scales(folder):
    """PEFT's scale per module path, by its rule (Tests/Fixtures/peft/README.md)."""
    meta_path = os.path.join(folder, "meta.json")
    if os.path.exists(meta_path):
        return {name: m["scaling"] for name, m in json.load(open(meta_path))["modules"].items()}
    config = json.load(open(os.path.join(folder, "adapter_config.json")))
    tensors = load_file(os.path.join(folder, "adapter_model.safetensors"))
    scales = {}
    for key in tensors:
        if not key.endswith(".lora_A.weight"):
            continue
        module = key[len("base_model.model."):-len(".lora_A.weight")]

        def pattern(table, default):
            for k, v in table.items():
                if re.match(r"(.*\.)?(" + k + r")$", module):
                    return v
            return default
        r = pattern(config.get("rank_pattern") or {}, config["r"])
        alpha = pattern(config.get("alpha_pattern") or {}, config["lora_alpha"])
        scales[module] = alpha / math.sqrt(r) if config.get("use_rslora") else alpha / r
    return scales


def llama_permute(b, n_head, n_head_kv):
    """convert_hf_to_gguf.py's LlamaModel.permute, applied to B as LoraTorchTensor does."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    rows, rank = b.shape
    return b.reshape(n_head, 2, rows // n_head // 2, rank).swapaxes(1, 2).reshape(rows, rank)


def converter_tensors(folder, arch, heads, outtype):
    """What convert_lora_to_gguf.py writes for the PEFT folder (tensors), and lora_alpha."""
    config = json.load(open(os.path.join(folder, "adapter_config.json")))
    lora = load_file(os.path.join(folder, "adapter_model.safetensors"))
    scales = peft_scales(folder)
    arch_id = next(k for k, v in gguf.MODEL_ARCH_NAMES.items() if v == arch)
    blocks = 1 + max(int(p) for key in lora for p in key.split(".") if p.isdecimal())
    names = gguf.get_tensor_name_map(arch_id, blocks)
    alpha = float(config["lora_alpha"])
    expected = {}
    for key in sorted(lora):
        if ".lora_A.weight" not in key:
            continue
        base = key.replace("base_model.model.", "").replace(".lora_A.weight", ".weight")
        a, b = lora[key], lora[key.replace("lora_A", "lora_B")]
        new = names.get_name(base, try_suffixes=(".weight", ".bias"))
        if new is None:
            fail(f"{folder}: converter cannot map {base}")
            continue
        if arch == "llama" and base.endswith("q_proj.weight"):
            b = llama_permute(b, heads[0], heads[0])
        if arch == "llama" and base.endswith("k_proj.weight"):
            b = llama_permute(b, heads[0], heads[1])
        module = base[:-len(".weight")]
        r = a.shape[0]
        applied = float(np.float32(alpha)) / r
        ratio = scales[module] / applied
        folded = abs(ratio - 1) > 1e-7
        if folded:
            b = (b.astype(np.float64) * ratio).astype(np.float32)
        dtype = np.float32 if outtype == "f32" else np.float16
        expected[new + ".lora_a"] = (a.astype(dtype), False)
        expected[new + ".lora_b"] = (b.astype(dtype), folded)
    return expected, alpha


def field_value(reader, key):
    field = reader.fields.get(key)
    if field is None:
        return None, None
    return field.contents(), field.types


def check(case, folder, spec, adapter, arch, heads=None):
    global checked_tensors
    for outtype in ("f32", "f16"):
        failures_before = len(failures)
        out = os.path.join(WORK, f"{case}-{outtype}.gguf")
        args = ["export-gguf", spec, "--adapter", adapter, "--arch", arch, "--dtype", outtype, "-o", out]
        if heads:
            args += ["--heads", f"{heads[0]}:{heads[1]}"]
        adaptc(*args)
        reader = gguf.GGUFReader(out)
        expected, alpha = converter_tensors(folder, arch, heads, outtype)
        label = f"{case} {outtype}"

        want = [("general.architecture", arch, [gguf.GGUFValueType.STRING]),
                ("general.alignment", 32, [gguf.GGUFValueType.UINT32]),
                ("general.type", "adapter", [gguf.GGUFValueType.STRING]),
                ("adapter.type", "lora", [gguf.GGUFValueType.STRING]),
                ("adapter.lora.alpha", alpha, [gguf.GGUFValueType.FLOAT32]),
                ("general.quantization_version", gguf.GGML_QUANT_VERSION, [gguf.GGUFValueType.UINT32])]
        for key, value, types in want:
            got, got_types = field_value(reader, key)
            if got != value or got_types != types:
                fail(f"{label}: {key} = {got!r} {got_types}, expected {value!r} {types}")
        name, name_types = field_value(reader, "general.name")
        if name_types != [gguf.GGUFValueType.STRING]:
            fail(f"{label}: general.name {name!r} {name_types}")
        extra = sorted(set(reader.fields) - {k for k, _, _ in want} - {"general.name", "GGUF.version", "GGUF.tensor_count", "GGUF.kv_count"})
        if extra:
            fail(f"{label}: unexpected keys {extra}")

        got_names = [t.name for t in reader.tensors]
        if sorted(got_names) != sorted(expected):
            fail(f"{label}: tensors {sorted(set(got_names) ^ set(expected))} differ")
            continue
        rebuilt = {}
        for tensor in reader.tensors:
            want_data, folded = expected[tensor.name]
            want_type = gguf.GGMLQuantizationType.F32 if outtype == "f32" else gguf.GGMLQuantizationType.F16
            if tensor.tensor_type != want_type:
                fail(f"{label}: {tensor.name} is {tensor.tensor_type.name}, expected {want_type.name}")
            if list(tensor.shape) != list(reversed(want_data.shape)):
                fail(f"{label}: {tensor.name} ne {list(tensor.shape)}, expected {list(reversed(want_data.shape))}")
            got = np.asarray(tensor.data).reshape(want_data.shape)
            if folded:
                # the ratio from PEFT's float64 scale vs adaptc's: one unit in the last place at most
                spacing = np.spacing(np.abs(want_data).astype(want_data.dtype))
                if not np.all(np.abs(got.astype(np.float64) - want_data.astype(np.float64)) <= spacing.astype(np.float64)):
                    fail(f"{label}: {tensor.name} (scale folded into B) differs by more than one ulp")
                rebuilt[tensor.name] = got
            else:
                if not np.array_equal(got.view(np.uint8), want_data.view(np.uint8)):
                    fail(f"{label}: {tensor.name} values differ (max {np.max(np.abs(got - want_data))})")
                rebuilt[tensor.name] = want_data
            checked_tensors += 1

        # gguf-py's writer, fed what the converter would write, must give adaptc's bytes.
        again = os.path.join(WORK, f"{case}-{outtype}.gguf-py.gguf")
        writer = gguf.GGUFWriter(again, arch)
        writer.add_custom_alignment(32)
        writer.add_type(gguf.GGUFType.ADAPTER)
        writer.add_name(name)
        writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
        writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, alpha)
        writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
        for tensor_name in got_names:
            data = rebuilt[tensor_name]
            writer.add_tensor(tensor_name, data, raw_dtype=gguf.GGMLQuantizationType.F32 if outtype == "f32" else gguf.GGMLQuantizationType.F16)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        if open(again, "rb").read() != open(out, "rb").read():
            fail(f"{label}: gguf-py's GGUFWriter writes other bytes for the same content")
        if len(failures) == failures_before:
            print(f"ok   {label}: {len(got_names)} tensors, alpha {alpha}, {sum(f for _, f in expected.values())} B folded")


for name in ["lora_qv", "rslora_patterns", "pissa"]:
    fixture = os.path.join(ROOT, "Tests/Fixtures/peft", name)
    out = os.path.join(WORK, name)
    adaptc("import-peft", fixture, "-o", out)
    check(name, fixture, f"{out}/{name}.adapt.yaml", f"{out}/{name}.safetensors", "bert")

# The native spec: random B (init leaves it zero), PEFT files by export-peft.
spec = os.path.join(ROOT, "Tests/Fixtures/gguf/tiny-llama.adapt.yaml")
adapter = os.path.join(WORK, "tiny.safetensors")
adaptc("init", spec, "-o", adapter, "--seed", "5")
with safe_open(adapter, "np") as f:
    metadata = f.metadata()
tensors = load_file(adapter)
random = np.random.default_rng(7)
for key in sorted(tensors):
    if key.endswith(".B"):
        tensors[key] = random.uniform(-0.5, 0.5, tensors[key].shape).astype(np.float32)
save_file(tensors, adapter, metadata=metadata)
peft_folder = os.path.join(WORK, "tiny-peft")
adaptc("export-peft", spec, "--adapter", adapter, "-o", peft_folder)
for arch, heads in [("llama", (4, 2)), ("qwen2", None)]:
    check(f"tiny-llama {arch}", peft_folder, spec, adapter, arch, heads)

import importlib.metadata
print(f"gguf {importlib.metadata.version('gguf')}: {checked_tensors} tensors checked, {len(failures)} failures")
sys.exit(1 if failures else 0)
