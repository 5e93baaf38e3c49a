#!/usr/bin/env python3
"""Helpers for the prune step of Tools/demo (Python standard library only).

  perturb ADAPTER OUT      a training-like update: every B gets seeded Gaussian
                           entries, columns decaying, some layers much weaker
                           than others (so LoRA-drop has something to drop)
  rows INPUTS OUT SEED N   N rows per key of INPUTS (same keys and widths),
                           activations with a decaying spectrum
  error Y Y2               relative output error ‖Y − Y2‖ / ‖Y‖ over all keys
"""
import json
import random
import struct
import sys


def read(path):
    data = open(path, "rb").read()
    size = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + size])
    metadata = header.pop("__metadata__", {})
    tensors = {}
    for name, entry in header.items():
        assert entry["dtype"] == "F32", f"{name}: only F32 here"
        begin, end = entry["data_offsets"]
        raw = data[8 + size + begin:8 + size + end]
        tensors[name] = (entry["shape"], list(struct.unpack(f"<{len(raw) // 4}f", raw)))
    return tensors, metadata


def write(path, tensors, metadata):
    header, blobs, offset = {}, [], 0
    if metadata:
        header["__metadata__"] = metadata
    for name in sorted(tensors):
        shape, values = tensors[name]
        blob = struct.pack(f"<{len(values)}f", *values)
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def perturb(adapter, out):
    tensors, metadata = read(adapter)
    rng = random.Random(7)
    layer_strength = [0.03, 1.0, 0.05, 0.7, 0.9, 0.02, 1.0, 0.5]
    for name in sorted(tensors):
        if not name.endswith(".B"):
            continue
        shape, values = tensors[name]
        layer = next((int(p) for p in name.split(".") if p.isdigit()), 0)
        strength = layer_strength[layer % len(layer_strength)]
        rank = shape[1]
        tensors[name] = (shape, [strength * rng.gauss(0, 0.2) / (1 + i % rank) for i in range(len(values))])
    write(out, tensors, metadata)


def rows(inputs, out, seed, count):
    tensors, _ = read(inputs)
    rng = random.Random(int(seed))
    result = {}
    for name in sorted(tensors):
        width = tensors[name][0][1]
        scales = [1 / (1 + 0.3 * j) for j in range(width)]
        result[name] = ([int(count), width], [rng.gauss(0, scales[j % width]) for j in range(int(count) * width)])
    write(out, result, {})


def error(first, second):
    a, _ = read(first)
    b, _ = read(second)
    total = sum(v * v for _, values in a.values() for v in values)
    diff = sum((u - v) ** 2 for name in a for u, v in zip(a[name][1], b[name][1]))
    print(f"    held-out rows: relative error of the pruned adapter's output ‖y − y'‖/‖y‖ = {(diff / total) ** 0.5:.4f}"
          f" (energy lost {diff / total:.2%})")


if __name__ == "__main__":
    command, args = sys.argv[1], sys.argv[2:]
    {"perturb": perturb, "rows": rows, "error": error}[command](*args)
