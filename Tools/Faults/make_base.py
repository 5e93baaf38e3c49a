#!/usr/bin/env python3
"""Writes a LLaMA-shaped base checkpoint and its spec for Tools/faults:
LAYERS layers of q_proj/v_proj [DIM, DIM] (F32, finite values), keyed
model.layers.{layer}.self_attn.{module}.weight. Standard library only."""
import json, struct, sys

folder, layers, dim = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
names = [f"model.layers.{l}.self_attn.{m}.weight" for l in range(layers) for m in ("q_proj", "v_proj")]
names.sort(key=lambda n: n.encode())
size = dim * dim * 4
header, offset = {}, 0
for name in names:
    header[name] = {"dtype": "F32", "shape": [dim, dim], "data_offsets": [offset, offset + size]}
    offset += size
text = json.dumps(header, separators=(",", ":")).encode()
text += b" " * ((8 - len(text) % 8) % 8)
row = struct.pack("<f", 0.01) * dim
with open(f"{folder}/base.safetensors", "wb") as out:
    out.write(struct.pack("<Q", len(text)))
    out.write(text)
    block = row * dim
    for _ in names:
        out.write(block)
with open(f"{folder}/big.adapt.yaml", "w") as spec:
    spec.write(f"""adaptc: 1
name: Big
model:
  layers: {layers}
  modules: {{q_proj: [{dim}, {dim}], v_proj: [{dim}, {dim}]}}
  weights: {{key: "model.layers.{{layer}}.self_attn.{{module}}.weight"}}
adapters:
  - {{name: attn, structure: lora, modules: [q_proj, v_proj], rank: 16, alpha: 32, init: {{method: gaussian, seed: 1}}}}
""")
