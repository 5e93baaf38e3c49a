"""Checks Tests/Fixtures/peft/dora_qv against DESIGN §5's DoRA maths with numpy alone (float64).

Usage (repository root): .build/peers-venv/bin/python Tools/PEFT/verify_dora_fixture.py
W' = m * V / ||V||_row with V = W + s.B.A; the norm is a constant in backward (PEFT detaches it).
"""
import numpy as np
from safetensors.numpy import load_file

D = "Tests/Fixtures/peft/dora_qv/"
ad = load_file(D + "adapter_model.safetensors")
base, X, DY = (load_file(D + f) for f in ("base.safetensors", "inputs.safetensors", "dy.safetensors"))
delta, G, M = (load_file(D + f) for f in ("delta.safetensors", "grads.safetensors", "merged.safetensors"))


def err(a, b):
    return np.abs(a - b).max() / np.abs(b).max()


worst, s = 0.0, 2.0
for p in X:
    key = "base_model.model." + p
    W = base[p + ".weight"].astype(float)
    A, B = ad[key + ".lora_A.weight"].astype(float), ad[key + ".lora_B.weight"].astype(float)
    m = ad[key + ".lora_magnitude_vector"].astype(float)
    V = W + s * B @ A
    nrm = np.linalg.norm(V, axis=1)
    c = m / nrm
    x, dy = X[p].astype(float), DY[p].astype(float)
    g = dy * c
    errs = [err(c * (x @ V.T) - x @ W.T, delta[p]), err(c[:, None] * V, M[p + ".weight"]),
            err(((x @ V.T) * dy / nrm).sum(0), G[p + ".dm"]), err(s * (g @ B).T @ x, G[p + ".dA"]),
            err(s * g.T @ (x @ A.T), G[p + ".dB"]), err(g @ V, G[p + ".dx"])]
    print(p, " ".join(f"{e:.1e}" for e in errs))
    worst = max(worst, *errs)
assert worst < 1e-6, worst
print("ok: delta, merged, dm, dA, dB, dx within", f"{worst:.1e}")
