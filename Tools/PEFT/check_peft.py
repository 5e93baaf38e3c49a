"""Round trip through PEFT itself (run by Tools/check-peft, not by swift test).

For each case: an adaptc spec + adapter (imported from a PEFT fixture with
`adaptc import-peft`, or native: a spec from Specs/ or written here, with
random factors) is exported with `adaptc export-peft`; the folder is loaded
with PEFT's own `PeftModel.from_pretrained` onto a torch model whose module
paths are the spec's `model.weights.key` for every (layer, module) of the
model (covered or not: PEFT must wrap exactly the covered ones). Then

- every wrapped module's output minus the base output (float64) equals
  `adaptc eval` on the same inputs to 1e-5 relative;
- PEFT's `merge_and_unload()` weights equal `adaptc merge` of the same base
  to 1e-5 relative (F32 base), untouched modules unchanged.

DoRA cases (PEFT's `use_dora`): the dora_qv fixture imported, and a native
`dora: true` spec initialised by `adaptc init --base` (m = ‖W‖_row) with its
factors and m then randomised; eval runs with `--base` (DoRA's output depends
on W), and the comparison is the same: PEFT's module output minus its base
output, and PEFT's merge_and_unload, against adaptc's.

A spec with `model.weights.layout: in_out` gets transformers' `Conv1D`
modules (GPT-2's layout), which PEFT drives with `fan_in_fan_out`.
Usage: check_peft.py ADAPTC WORKDIR
"""
import json
import os
import re
import subprocess
import sys

import numpy as np
import torch
import yaml
from peft import PeftModel
from peft.tuners.lora import LoraLayer
from safetensors import safe_open
from safetensors.numpy import load_file, save_file
from transformers.pytorch_utils import Conv1D

ADAPTC, WORK = sys.argv[1], sys.argv[2]
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOLERANCE = 1e-5
failures = []


def adaptc(*args):
    run = subprocess.run([ADAPTC, *args], capture_output=True, text=True)
    if run.returncode != 0:
        sys.exit(f"adaptc {' '.join(args)} failed:\n{run.stdout}{run.stderr}")
    return run.stdout


def relative(got, want):
    scale = float(np.max(np.abs(want)))
    return float(np.max(np.abs(got - want))) / (scale if scale > 0 else 1.0)


def check(label, got, want):
    error = relative(np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64))
    status = "ok" if error <= TOLERANCE else "FAIL"
    if status == "FAIL":
        failures.append(label)
    return error


class Node(torch.nn.Module):
    """A container whose children are added by name (numeric names included)."""


def build_model(spec, seed):
    """Every (layer, module) of the spec's model, at its weights-key path."""
    model_spec = spec["model"]
    template = model_spec["weights"]["key"]
    transposed = model_spec["weights"].get("layout", "out_in") == "in_out"
    generator = torch.Generator().manual_seed(seed)
    root = Node()
    paths = {}
    for layer in range(model_spec["layers"]):
        for module, (out_features, in_features) in model_spec["modules"].items():
            key = template.replace("{layer}", str(layer)).replace("{module}", module)
            assert key.endswith(".weight"), key
            path = key[: -len(".weight")]
            if transposed:
                linear = Conv1D(out_features, in_features)      # weight [in, out]
            else:
                linear = torch.nn.Linear(in_features, out_features)
            with torch.no_grad():
                linear.weight.copy_(0.05 * torch.randn(linear.weight.shape, generator=generator))
                linear.bias.copy_(0.1 * torch.randn(linear.bias.shape, generator=generator))
            parent = root
            parts = path.split(".")
            for part in parts[:-1]:
                if not hasattr(parent, part):
                    parent.add_module(part, Node())
                parent = getattr(parent, part)
            parent.add_module(parts[-1], linear)
            paths[path] = (layer, module, out_features, in_features)
    return root.double().eval(), paths


def run_case(name, spec_path, adapter_path):
    with open(spec_path) as f:
        spec = yaml.safe_load(f)
    out = os.path.join(WORK, name)
    os.makedirs(out, exist_ok=True)
    folder = os.path.join(out, "peft")
    adaptc("export-peft", spec_path, "--adapter", adapter_path, "-o", folder)
    with open(os.path.join(folder, "adapter_config.json")) as f:
        config = json.load(f)

    model, paths = build_model(spec, seed=7)
    base_state = {k: v.detach().float().numpy().copy() for k, v in model.state_dict().items()}
    base_path = os.path.join(out, "base.safetensors")
    save_file({k: np.ascontiguousarray(v) for k, v in base_state.items()}, base_path, metadata={"format": "pt"})

    peft_model = PeftModel.from_pretrained(model, folder).double().eval()
    wrapped = {n[len("base_model.model."):] for n, m in peft_model.named_modules()
               if isinstance(m, LoraLayer) and n.startswith("base_model.model.")}
    exported = {k[len("base_model.model."): -len(".lora_A.weight")]
                for k in load_file(os.path.join(folder, "adapter_model.safetensors")) if k.endswith(".lora_A.weight")}
    if wrapped != exported:
        failures.append(f"{name}: PEFT wraps {sorted(wrapped ^ exported)} differently from the export")

    # Outputs: PEFT (float64) against adaptc eval, on the same inputs.
    rng = np.random.default_rng(11)
    inputs = {}
    for path in sorted(exported):
        layer, module, _, in_features = paths[path]
        inputs[f"{layer}.{module}"] = rng.standard_normal((5, in_features)).astype(np.float32)
    inputs_path, outputs_path = os.path.join(out, "inputs.safetensors"), os.path.join(out, "outputs.safetensors")
    save_file(inputs, inputs_path)
    dora = ["--base", base_path] if config.get("use_dora") else []
    adaptc("eval", spec_path, "--adapter", adapter_path, "--input", inputs_path, *dora, "-o", outputs_path)
    outputs = load_file(outputs_path)
    modules = dict(peft_model.base_model.model.named_modules())
    worst_eval = 0.0
    with torch.no_grad():
        for path in sorted(exported):
            layer, module, _, _ = paths[path]
            x = torch.from_numpy(inputs[f"{layer}.{module}"]).double()
            lora = modules[path]
            delta = (lora(x) - lora.base_layer(x)).numpy()
            worst_eval = max(worst_eval, check(f"{name}: eval {path}", outputs[f"{layer}.{module}"], delta))

    # Weights: PEFT's merge_and_unload against adaptc merge of the same base.
    merged_path = os.path.join(out, "merged.safetensors")
    adaptc("merge", spec_path, "--adapter", adapter_path, "--base", base_path, "-o", merged_path)
    ours = load_file(merged_path)
    theirs = {k: v.detach().numpy() for k, v in peft_model.merge_and_unload().state_dict().items()}
    worst_merge = 0.0
    for key, value in base_state.items():
        if key[: -len(".weight")] in exported and key.endswith(".weight"):
            worst_merge = max(worst_merge, check(f"{name}: merge {key}", ours[key], theirs[key]))
        elif not np.array_equal(ours[key], value) or not np.allclose(theirs[key], value, rtol=0, atol=1e-7):
            failures.append(f"{name}: untargeted {key} changed")
    print(json.dumps({"case": name, "pairs": len(exported), "fan_in_fan_out": config["fan_in_fan_out"],
                      "use_rslora": config["use_rslora"], "rank_pattern": len(config["rank_pattern"]),
                      "alpha_pattern": len(config["alpha_pattern"]), "use_dora": config["use_dora"],
                      "eval_rel_err": worst_eval,
                      "merge_rel_err": worst_merge}), flush=True)


def random_adapter(spec_path, path, seed, base=None):
    """`adaptc init` (for the metadata; DoRA's m = ‖W‖_row from `base`), then
    every factor random and each DoRA magnitude scaled by U(0.5, 1.5)."""
    adaptc("init", spec_path, *(["--base", base] if base else []), "-o", path)
    with safe_open(path, "np") as f:
        metadata = f.metadata()
    tensors = load_file(path)
    rng = np.random.default_rng(seed)
    save_file({k: ((v * rng.uniform(0.5, 1.5, v.shape)) if k.endswith(".magnitude")
                   else 0.3 * rng.standard_normal(v.shape)).astype(np.float32) for k, v in tensors.items()}, path,
              metadata=metadata)


DORA_SPEC = """\
adaptc: 1
name: TinyDora
model:
  layers: 3
  modules: {q: [24, 16], v: [16, 16], up: [32, 16]}
  weights: {key: "model.layers.{layer}.{module}.weight"}
adapters:
  - name: dora
    structure: lora
    modules: [q, v, up]
    rank: 4
    alpha: 8
    dora: true
    overrides:
      "1.q": {rank: 2, alpha: 3}
"""


CONV1D_SPEC = """\
adaptc: 1
name: Gpt2Conv
model:
  layers: 3
  modules: {attn.c_attn: [96, 32], attn.c_proj: [32, 32], mlp.c_fc: [64, 32]}
  weights: {key: "transformer.h.{layer}.{module}.weight", layout: in_out}
adapters:
  - name: attn
    structure: lora
    modules: [attn.c_attn]
    rank: 4
    alpha: 8
    overrides:
      "2.attn.c_attn": {rank: 2, alpha: 3}
  - name: mlp
    structure: lora
    layers: [0, 2]
    modules: [mlp.c_fc]
    rank: 6
    alpha: 12
    scaling: rslora
"""


def main():
    os.makedirs(WORK, exist_ok=True)
    torch.manual_seed(0)
    for case in ("lora_qv", "rslora_patterns", "pissa", "dora_qv"):
        imported = os.path.join(WORK, "imported")
        adaptc("import-peft", os.path.join(ROOT, "Tests/Fixtures/peft", case), "-o", imported, "--name", case)
        run_case(f"import:{case}", os.path.join(imported, f"{case}.adapt.yaml"),
                 os.path.join(imported, f"{case}.safetensors"))
    native = os.path.join(WORK, "native")
    os.makedirs(native, exist_ok=True)
    conv = os.path.join(native, "gpt2-conv.adapt.yaml")
    with open(conv, "w") as f:
        f.write(CONV1D_SPEC)
    for index, spec_path in enumerate([os.path.join(ROOT, "Specs/tiny-qv.adapt.yaml"), conv]):
        stem = re.sub(r"\.adapt\.yaml$", "", os.path.basename(spec_path))
        adapter = os.path.join(native, f"{stem}.safetensors")
        random_adapter(spec_path, adapter, seed=index)
        run_case(f"native:{stem}", spec_path, adapter)
    # Native DoRA: init needs the base, which is the model run_case builds (seed 7).
    dora = os.path.join(native, "tiny-dora.adapt.yaml")
    with open(dora, "w") as f:
        f.write(DORA_SPEC)
    with open(dora) as f:
        model, _ = build_model(yaml.safe_load(f), seed=7)
    dora_base = os.path.join(native, "tiny-dora-base.safetensors")
    save_file({k: np.ascontiguousarray(v.detach().float().numpy()) for k, v in model.state_dict().items()}, dora_base)
    random_adapter(dora, os.path.join(native, "tiny-dora.safetensors"), seed=5, base=dora_base)
    run_case("native:tiny-dora", dora, os.path.join(native, "tiny-dora.safetensors"))
    if failures:
        more = f"; and {len(failures) - 5} more" if len(failures) > 5 else ""
        sys.exit(f"check-peft: FAILED {len(failures)} checks: " + "; ".join(failures[:5]) + more)
    print(f"check-peft: PEFT reproduces adaptc within {TOLERANCE:g} relative (eval and merge) in every case", file=sys.stderr)


main()
