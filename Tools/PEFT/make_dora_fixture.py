"""Writes Tests/Fixtures/peft/dora_qv: PEFT's own use_dora=True as ground truth.

Usage: .build/peers-venv/bin/python Tools/PEFT/make_dora_fixture.py [OUTDIR]

The base is a tiny torch model with BERT's module paths
(`encoder.layer.L.attention.self.{query,value}`, 2 layers, 8 -> 8 Linear with
bias), so `adaptc import-peft` maps it like the other fixtures. PEFT wraps
query and value with r=2, lora_alpha=4 (scaling 2), use_dora=True; then A, B
and the magnitude are overwritten with random non-zero values (B = 0 and
m = ||W||_row at PEFT's init would make every case trivial).

References are computed with the PEFT model cast to float64 (so they hold
PEFT's maths, not float32 rounding) and stored as float32:
- `full`: the wrapped module's output peft_module(x), bias included;
- `delta`: peft_module(x) - (x.W^T + b), the adapter's own output;
- grads of sum(full * dy): `dA` [r,in], `dB` [out,r], `dm` [out] and `dx`
  [n,in] (the whole module's, base path included), with PEFT's weight norm
  detached as PEFT itself does in DoraLinearLayer.forward;
- `merged`: merge_and_unload()'s weights (W' = m * (W + sBA) / ||W + sBA||_row).
"""
import json
import os
import sys

import numpy as np
import peft
import safetensors
import torch
from peft import LoraConfig, get_peft_model
from safetensors.numpy import save_file

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "Tests/Fixtures/peft/dora_qv")
HIDDEN, LAYERS, RANK, ALPHA, N = 8, 2, 2, 4, 3
MODULES = ["query", "value"]


class SelfAttention(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.query = torch.nn.Linear(HIDDEN, HIDDEN)
        self.value = torch.nn.Linear(HIDDEN, HIDDEN)


class Attention(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.self = SelfAttention()


class Layer(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.attention = Attention()


class Encoder(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.ModuleList([Layer() for _ in range(LAYERS)])


class Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = Encoder()

    def forward(self, x):  # PEFT needs a forward; the fixture drives modules one by one
        return x


def module_paths():
    return [f"encoder.layer.{l}.attention.self.{m}" for l in range(LAYERS) for m in MODULES]


def main():
    torch.manual_seed(2929)
    gen = torch.Generator().manual_seed(2930)
    model = Tiny()
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            p.copy_(torch.randn(p.shape, generator=gen) * (0.3 if name.endswith("weight") else 0.1))
    base = {}
    for path in module_paths():
        mod = model.get_submodule(path)
        base[path + ".weight"] = mod.weight.detach().numpy().copy()
        base[path + ".bias"] = mod.bias.detach().numpy().copy()

    config_kwargs = dict(r=RANK, lora_alpha=ALPHA, target_modules=MODULES, lora_dropout=0.0,
                         bias="none", use_dora=True)
    pm = get_peft_model(model, LoraConfig(**config_kwargs))
    with torch.no_grad():
        for path in module_paths():
            mod = pm.base_model.model.get_submodule(path)
            mod.lora_A["default"].weight.copy_(torch.randn(mod.lora_A["default"].weight.shape, generator=gen) * 0.3)
            mod.lora_B["default"].weight.copy_(torch.randn(mod.lora_B["default"].weight.shape, generator=gen) * 0.3)
            mag = mod.lora_magnitude_vector["default"].weight
            mag.copy_(torch.rand(mag.shape, generator=gen) + 0.5)
    os.makedirs(OUT, exist_ok=True)
    pm.save_pretrained(OUT)  # adapter_config.json, adapter_model.safetensors (unedited)
    readme = os.path.join(OUT, "README.md")  # PEFT's model card: not part of the fixture
    if os.path.exists(readme):
        os.remove(readme)

    pm = pm.double()
    inputs, dys, full, delta, grads, meta_modules = {}, {}, {}, {}, {}, {}
    for path in module_paths():
        mod = pm.base_model.model.get_submodule(path)
        x = (torch.randn((N, HIDDEN), generator=gen)).double().requires_grad_(True)
        dy = torch.randn((N, HIDDEN), generator=gen).double()
        for p in mod.parameters():
            p.grad = None
        y = mod(x)
        (y * dy).sum().backward()
        W = mod.base_layer.weight.detach()
        b = mod.base_layer.bias.detach()
        inputs[path] = x.detach().float().numpy()
        dys[path] = dy.float().numpy()
        full[path] = y.detach().float().numpy()
        delta[path] = (y.detach() - (x.detach() @ W.T + b)).float().numpy()
        grads[path + ".dA"] = mod.lora_A["default"].weight.grad.float().numpy()
        grads[path + ".dB"] = mod.lora_B["default"].weight.grad.float().numpy()
        grads[path + ".dm"] = mod.lora_magnitude_vector["default"].weight.grad.float().numpy()
        grads[path + ".dx"] = x.grad.float().numpy()
        meta_modules[path] = {"in_features": HIDDEN, "out_features": HIDDEN, "r": RANK,
                              "lora_alpha": ALPHA, "scaling": float(mod.scaling["default"])}

    merged_model = pm.merge_and_unload()
    merged = {}
    for path in module_paths():
        mod = merged_model.get_submodule(path)
        merged[path + ".weight"] = mod.weight.detach().float().numpy()
        merged[path + ".bias"] = mod.bias.detach().float().numpy()

    save_file(base, os.path.join(OUT, "base.safetensors"))
    save_file(inputs, os.path.join(OUT, "inputs.safetensors"))
    save_file(dys, os.path.join(OUT, "dy.safetensors"))
    save_file(full, os.path.join(OUT, "full.safetensors"))
    save_file(delta, os.path.join(OUT, "delta.safetensors"))
    save_file(grads, os.path.join(OUT, "grads.safetensors"))
    save_file(merged, os.path.join(OUT, "merged.safetensors"))
    meta = {
        "case": "dora_qv",
        "versions": {"peft": peft.__version__, "torch": torch.__version__,
                     "safetensors": safetensors.__version__, "numpy": np.__version__},
        "base_model": {"class": "Tiny (Tools/PEFT/make_dora_fixture.py)", "hidden": HIDDEN, "layers": LAYERS,
                       "init": "torch.manual_seed(2929); Generator seed 2930: weights randn*0.3, biases randn*0.1",
                       "dtype": "float32"},
        "lora_config_kwargs": config_kwargs,
        "randomised": "lora_A, lora_B ~ randn*0.3; lora_magnitude_vector ~ U(0.5, 1.5)",
        "references": "PEFT model cast to float64; stored float32; loss = sum(full * dy)",
        "n": N,
        "modules": meta_modules,
    }
    with open(os.path.join(OUT, "meta.json"), "w") as f:
        json.dump(meta, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
