"""Peer of `minilm-embed` (DESIGN §8): all-MiniLM-L6-v2 with transformers'
BertModel and mean pooling, torch.set_num_threads(2), on the same 1,000
sentences and in the same batches of 32 as `MiniLMQuant bench`: tokenize
(transformers' BertTokenizer, padding to the batch's longest), encode, mean
pooling over the attention mask, L2 normalisation. `seconds` is the median of
the repeats after one warm-up pass. One JSON object on stdout.

Usage: Tools/peers minilm-embed   (checkpoint: Tools/fetch-minilm, or $ADAPTC_MINILM_CACHE)
"""
import json
import os
import statistics
import sys
import time

try:
    import torch
    from transformers import BertModel, BertTokenizer
except ImportError as error:  # torch is installed into the venv by Tools/check-peft
    print(f"minilm-embed peer: skipped ({error}; Tools/check-peft installs torch into the venv)", file=sys.stderr)
    sys.exit(0)

THREADS, BATCH, COUNT, REPEATS = 2, 32, 1000, 5
folder = os.environ.get("ADAPTC_MINILM_CACHE", ".build/minilm")
torch.set_num_threads(THREADS)
tokenizer = BertTokenizer.from_pretrained(folder)
model = BertModel.from_pretrained(folder, torch_dtype=torch.float32, add_pooling_layer=False).eval()
with open(f"{folder}/vocab.txt", encoding="utf-8") as f:
    vocabulary = f.read().split("\n")
# Sentence k: the vocab.txt lines (0-based, the token ids) 2000 + (7919·k + 104729·j) mod 20000, j = 0 … 7 + k mod 24.
sentences = [" ".join(vocabulary[2000 + (7919 * k + 104729 * j) % 20000] for j in range(8 + k % 24)) for k in range(COUNT)]


def embed_all():
    checksum = 0.0
    with torch.inference_mode():
        for start in range(0, COUNT, BATCH):
            batch = tokenizer(sentences[start:start + BATCH], truncation=True, max_length=512, padding=True, return_tensors="pt")
            hidden = model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            checksum += float(torch.nn.functional.normalize(pooled, p=2, dim=1)[:, 0].sum())
    return checksum


embed_all()
samples = []
for _ in range(REPEATS):
    begin = time.perf_counter()
    checksum = embed_all()
    samples.append(time.perf_counter() - begin)
tokens = sum(len(ids) for ids in tokenizer(sentences, truncation=True, max_length=512)["input_ids"])
print(json.dumps({"case": "minilm-embed", "variant": f"batch{BATCH}", "n": COUNT, "tokens": tokens,
                  "impl": f"torch {torch.__version__} (transformers BertModel)", "threads": THREADS,
                  "seconds": round(statistics.median(samples), 6), "checksum": round(checksum, 6)}), flush=True)
