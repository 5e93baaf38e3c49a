#!/usr/bin/env bash
# Makes the pruned fixtures of PrunedAdapterTests with adaptc itself:
# random parameters for tiny-tt / tiny-lora (python, no packages), random
# calibration rows, `adaptc prune`, then `adaptc materialize` of the pruned
# spec and adapter (the interpreter's ΔW, independent of generated code). The
# pruned specs are copied to Tests/MiniLMTests/Pruned/, where AdaptcPlugin
# compiles them for the tests. Run from this folder: ./make_prune_fixtures.sh ADAPTC
set -euo pipefail
adaptc="$1"
cd "$(dirname "$0")"
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
for stem in tiny-tt tiny-lora; do
    "$adaptc" init "$stem.adapt.yaml" -o "$work/$stem.init.safetensors" --seed 1
    python3 - "$work/$stem.init.safetensors" "$stem.adapter.safetensors" "$stem.calibration.safetensors" <<'PY'
import json, random, struct, sys
def read(path):
    data = open(path, "rb").read()
    n = struct.unpack("<Q", data[:8])[0]
    return json.loads(data[8:8 + n])
def write(path, tensors, metadata):
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        shape, values = tensors[name]
        blob = struct.pack("<%df" % len(values), *values)
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob); offset += len(blob)
    if metadata: header["__metadata__"] = metadata
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    open(path, "wb").write(struct.pack("<Q", len(text)) + text + b"".join(blobs))
source, adapter, calibration = sys.argv[1:]
header = read(source)
random.seed(7)
tensors = {}
for name, entry in header.items():
    if name == "__metadata__": continue
    count = 1
    for d in entry["shape"]: count *= d
    tensors[name] = (entry["shape"], [random.uniform(-0.5, 0.5) for _ in range(count)])
write(adapter, tensors, header["__metadata__"])
rows = {}
for layer in range(3):
    for module in ["attention.self.query", "attention.self.value"]:
        scale = 1 + layer  # later layers carry more energy, so the shares differ
        rows["%d.%s" % (layer, module)] = ([16, 8], [scale * random.gauss(0, 1) for _ in range(16 * 8)])
write(calibration, rows, {})
PY
    "$adaptc" prune "$stem.adapt.yaml" --adapter "$stem.adapter.safetensors" --calib "$stem.calibration.safetensors" -o "$work/pruned-$stem"
    cp "$work/pruned-$stem/$stem.safetensors" "$stem.pruned.safetensors"
    cp "$work/pruned-$stem/$stem.adapt.yaml" "../../Pruned/$stem.adapt.yaml"
    "$adaptc" materialize "../../Pruned/$stem.adapt.yaml" --adapter "$stem.pruned.safetensors" -o "$stem.pruned-delta.safetensors"
done
