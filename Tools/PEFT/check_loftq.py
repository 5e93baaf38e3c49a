"""adaptc's LoftQ against PEFT's own `loftq_init` (run by Tools/check-loftq, not by swift test).

PEFT without bitsandbytes quantises 4 bits with its NFQuantizer: the same
NormalFloat map as QLoRA (create_normal_map, offset 0.9677083), blockwise
absmax over blocks of 64 of the flattened weight (= groups of 64 along `in`
when 64 divides `in`), nearest level. It splits √S into both factors and
ignores the LoRA scale, so the spec here has alpha = rank (s = 1), exact SVD.

For each weight and T in (1, 4), adaptc init --residual against loftq_init:
- Q (the residual file) agrees element for element except where the two
  normalisations (PEFT x/absmax in float32 against bitsandbytes' float32
  thresholds) fall on opposite sides of a level boundary: ≥ 99.9% equal;
- ΔW = s·B·A equals PEFT's L·R to 1e-3 relative (Frobenius);
- ‖W − (Q + ΔW)‖ agrees to 1% relative.
Usage: check_loftq.py ADAPTC WORKDIR
"""
import os
import subprocess
import sys

import numpy as np
import torch
from peft.utils.loftq_utils import loftq_init
from safetensors.numpy import load_file, save_file

ADAPTC, WORK = sys.argv[1], sys.argv[2]
OUT, IN, RANK = 96, 128, 8
failures = []

rng = np.random.default_rng(7)
base = {}
for layer in range(2):
    for module in ("query", "value"):
        w = rng.standard_normal((OUT, 4)) @ rng.standard_normal((4, IN)) * 0.1 + 0.02 * rng.standard_normal((OUT, IN))
        base[f"layers.{layer}.{module}.weight"] = w.astype(np.float32)
save_file(base, os.path.join(WORK, "base.safetensors"))

for iterations in (1, 4):
    spec = os.path.join(WORK, f"loftq{iterations}.adapt.yaml")
    with open(spec, "w") as f:
        f.write(f"""adaptc: 1
name: LoftQCheck
model:
  layers: 2
  modules: {{query: [{OUT}, {IN}], value: [{OUT}, {IN}]}}
  weights: {{key: "layers.{{layer}}.{{module}}.weight"}}
adapters:
  - name: attn
    structure: lora
    modules: [query, value]
    rank: {RANK}
    alpha: {RANK}
    init: {{method: loftq, quantiser: {{bits: 4, group: 64, kind: nf4}}, iterations: {iterations}, svd: exact}}
""")
    adapter, residual = os.path.join(WORK, f"a{iterations}.safetensors"), os.path.join(WORK, f"r{iterations}.safetensors")
    run = subprocess.run([ADAPTC, "init", spec, "--base", os.path.join(WORK, "base.safetensors"), "-o", adapter,
                          "--residual", residual], capture_output=True, text=True)
    if run.returncode != 0:
        sys.exit(f"adaptc init failed:\n{run.stdout}{run.stderr}")
    factors, q_file = load_file(adapter), load_file(residual)
    for key, w in base.items():
        pair = key.removeprefix("layers.").removesuffix(".weight")
        delta = factors[f"attn.{pair}.B"].astype(np.float64) @ factors[f"attn.{pair}.A"].astype(np.float64)
        q = q_file[key].astype(np.float64)
        q_peft, a_peft, b_peft = loftq_init(torch.from_numpy(w.copy()), num_bits=4, reduced_rank=RANK, num_iter=iterations)
        q_peft = q_peft.double().numpy()
        delta_peft = b_peft.double().numpy() @ a_peft.double().numpy()
        same = float(np.mean(np.isclose(q, q_peft, rtol=1e-6, atol=0)))
        delta_error = np.linalg.norm(delta - delta_peft) / np.linalg.norm(delta_peft)
        mine = np.linalg.norm(w - q - delta) / np.linalg.norm(w)
        theirs = np.linalg.norm(w - q_peft - delta_peft) / np.linalg.norm(w)
        ok = same >= 0.999 and delta_error <= 1e-3 and abs(mine - theirs) <= 0.01 * theirs
        if not ok:
            failures.append(f"T {iterations} {key}")
        print(f"{'ok  ' if ok else 'FAIL'} T {iterations} {key}: Q equal {same:.5f}, ΔW rel diff {delta_error:.2e}, "
              f"‖W − (Q + ΔW)‖/‖W‖ adaptc {mine:.6f} PEFT {theirs:.6f}")

if failures:
    sys.exit(f"{len(failures)} failed: {', '.join(failures)}")
print("adaptc's LoftQ matches PEFT's loftq_init")
