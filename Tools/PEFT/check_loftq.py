"""adaptc's LoftQ against PEFT's `loftq_init` (run by Tools/check-loftq, not by swift test).

PEFT (0.20+) runs LoftQ only on a GPU (`compute_device` is cuda or xpu) and
quantises with bitsandbytes: 4 bits as `Params4bit(quant_type="nf4",
compress_statistics=False)` (QLoRA's NF4, absmax blocks of 64 of the
flattened weight = groups of 64 along `in` when 64 divides `in`), 8 bits as
`Int8Params` (LLM.int8's row-wise absmax, round half to even). This script runs
PEFT's loop (peft/utils/loftq_utils.py `loftq_init`, transcribed line for line
because of the device) on the CPU with the same bitsandbytes calls and PEFT's
own `_low_rank_decomposition`. PEFT splits √S into both factors and ignores
the LoRA scale, so the specs have alpha = rank (s = 1) and `svd: exact`.

For each weight, kind and T in (1, 4), `adaptc init --residual` against it:
- Q (the residual file) equal element for element, but for elements whose
  normalised value lies within float32 rounding of a decision boundary
  (bitsandbytes multiplies by 1/absmax in float32): ≥ 99.9% equal;
- ΔW = s·B·A equal to PEFT's L·R to 1e-3 relative (Frobenius);
- ‖W − (Q + ΔW)‖/‖W‖ equal to 1% relative.
Usage: check_loftq.py ADAPTC WORKDIR
"""
import os
import subprocess
import sys

import numpy as np
import torch
import bitsandbytes.functional as bnbf
from peft.utils.loftq_utils import _low_rank_decomposition
from safetensors.numpy import load_file, save_file

ADAPTC, WORK = sys.argv[1], sys.argv[2]
OUT, IN, RANK = 96, 128, 8
failures = []



def peft_loftq(weight, num_bits, reduced_rank, num_iter):
    """PEFT 0.21's loftq_init loop, with `compute_device` the CPU."""
    weight = torch.from_numpy(weight.copy()).float()
    res = weight.clone()
    for i in range(num_iter):
        if num_bits == 4:   # bnb.nn.Params4bit(res, compress_statistics=False, quant_type="nf4"): blocksize 64
            qweight, state = bnbf.quantize_4bit(res, blocksize=64, compress_statistics=False, quant_type="nf4")
            dequantized_weight = bnbf.dequantize_4bit(qweight, state)
        else:               # bnb.nn.Int8Params(res): row-wise absmax
            codes, row_absmax, _ = bnbf.int8_vectorwise_quant(res)
            dequantized_weight = bnbf.int8_vectorwise_dequant(codes, row_absmax)
        res = weight - dequantized_weight
        output = _low_rank_decomposition(res, reduced_rank=reduced_rank)
        L, R = output["L"], output["R"]
        if i + 1 == num_iter:
            break
        res = weight - torch.mm(L, R)
    return dequantized_weight, R, L


rng = np.random.default_rng(7)
base = {}
for layer in range(2):
    for module in ("query", "value"):
        w = rng.standard_normal((OUT, 4)) @ rng.standard_normal((4, IN)) * 0.1 + 0.02 * rng.standard_normal((OUT, IN))
        base[f"layers.{layer}.{module}.weight"] = w.astype(np.float32)
save_file(base, os.path.join(WORK, "base.safetensors"))

for (bits, quantiser), iterations in [(q, t) for q in ((4, "{bits: 4, group: 64, kind: nf4}"),
                                                      (8, f"{{bits: 8, group: {IN}, kind: symmetric}}"))
                                      for t in (1, 4)]:
    name = f"{bits}bit-T{iterations}"
    spec = os.path.join(WORK, f"loftq{name}.adapt.yaml")
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
    init: {{method: loftq, quantiser: {quantiser}, iterations: {iterations}, svd: exact}}
""")
    adapter, residual = os.path.join(WORK, f"a{name}.safetensors"), os.path.join(WORK, f"r{name}.safetensors")
    run = subprocess.run([ADAPTC, "init", spec, "--base", os.path.join(WORK, "base.safetensors"), "-o", adapter,
                          "--residual", residual], capture_output=True, text=True)
    if run.returncode != 0:
        sys.exit(f"adaptc init failed:\n{run.stdout}{run.stderr}")
    factors, q_file = load_file(adapter), load_file(residual)
    for key, w in base.items():
        pair = key.removeprefix("layers.").removesuffix(".weight")
        delta = factors[f"attn.{pair}.B"].astype(np.float64) @ factors[f"attn.{pair}.A"].astype(np.float64)
        q = q_file[key].astype(np.float64)
        q_peft, a_peft, b_peft = peft_loftq(w, bits, RANK, iterations)
        q_peft = q_peft.double().numpy()
        delta_peft = b_peft.double().numpy() @ a_peft.double().numpy()
        same = float(np.mean(np.isclose(q, q_peft, rtol=1e-6, atol=0)))
        delta_error = np.linalg.norm(delta - delta_peft) / np.linalg.norm(delta_peft)
        mine = np.linalg.norm(w - q - delta) / np.linalg.norm(w)
        theirs = np.linalg.norm(w - q_peft - delta_peft) / np.linalg.norm(w)
        ok = same >= 0.999 and delta_error <= 1e-3 and abs(mine - theirs) <= 0.01 * theirs
        if not ok:
            failures.append(f"{name} {key}")
        print(f"{'ok  ' if ok else 'FAIL'} {name} {key}: Q equal {same:.5f}, ΔW rel diff {delta_error:.2e}, "
              f"‖W − (Q + ΔW)‖/‖W‖ adaptc {mine:.6f} PEFT {theirs:.6f}")

if failures:
    sys.exit(f"{len(failures)} failed: {', '.join(failures)}")
print("adaptc's LoftQ matches PEFT's loftq_init")
