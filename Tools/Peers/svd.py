"""Peers of `init-pissa` (DESIGN §8): the rank-16 part of 24 matrices 1024x1024,
each U diag(1/k) V^T (random orthogonal U, V) plus 1e-5 Gaussian noise, float32.

- numpy: exact SVD (np.linalg.svd, full_matrices=False), OpenBLAS at 2 threads;
- scipy: ARPACK svds(k=16) at 1 and at 2 threads (threadpoolctl);
- torch: svd_lowrank(q=r, niter=2 and 4), as PEFT calls it for pissa_niter_K,
  when torch is importable (Tools/check-peft installs it into the venv).

`rel_err`: the worst matrix's ||W~_16 - W_16||_F / ||W_16||_F against the exact
rank-16 truncation (numpy's SVD of the same matrix, untimed). `seconds`: the
median of repeated runs over all 24 matrices, after a warm-up run.
"""
import json
import os
import statistics
import time

import numpy as np
from scipy.sparse.linalg import svds
from threadpoolctl import threadpool_limits

COUNT, SIZE, RANK = 24, 1024, 16


def matrices():
    rng = np.random.default_rng(0)
    out = []
    for _ in range(COUNT):
        u, _ = np.linalg.qr(rng.standard_normal((SIZE, SIZE)))
        v, _ = np.linalg.qr(rng.standard_normal((SIZE, SIZE)))
        w = (u / np.arange(1, SIZE + 1)) @ v.T + 1e-5 * rng.standard_normal((SIZE, SIZE))
        out.append(w.astype(np.float32))
    return out


def truncation(u, s, vt):
    return (u[:, :RANK] * s[:RANK]) @ vt[:RANK]


def timed(run, repeats):
    run()
    samples = []
    result = None
    for _ in range(repeats):
        start = time.perf_counter()
        result = run()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples), result


def emit(variant, impl, threads, seconds, rel_err):
    print(json.dumps({"case": "init-pissa", "variant": variant, "n": COUNT, "impl": impl, "threads": threads,
                      "seconds": seconds, "flops": COUNT * 4 * SIZE ** 3, "rel_err": rel_err}), flush=True)


def main():
    ws = matrices()
    # PEERS_SVD_QUICK=1: the references from an untimed one-thread SVD, and
    # only the fastest accurate peer (ARPACK at one thread; at two it loses
    # 40x to OpenBLAS's spinning threads on this 2-core machine) and torch,
    # for rounds alternating with adaptc's benchmark.
    quick = os.environ.get("PEERS_SVD_QUICK") == "1"
    if quick:
        with threadpool_limits(limits=1):
            exact_seconds, exact = None, [np.linalg.svd(w, full_matrices=False) for w in ws]
    else:
        with threadpool_limits(limits=2):
            exact_seconds, exact = timed(lambda: [np.linalg.svd(w, full_matrices=False) for w in ws], 1)
    references = [truncation(*f) for f in exact]

    def worst(parts):
        return max(float(np.linalg.norm(p - r) / np.linalg.norm(r)) for p, r in zip(parts, references))

    if not quick:
        emit("exact", "numpy", 2, exact_seconds, 0.0)
    for threads in ((1,) if quick else (1, 2)):
        with threadpool_limits(limits=threads):
            seconds, results = timed(lambda: [svds(w, k=RANK, random_state=0) for w in ws], 5)
        parts = [(u * s) @ vt for u, s, vt in results]
        emit("randomized", "scipy-arpack-svds", threads, seconds, worst(parts))
    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(2)
    tensors = [torch.from_numpy(w) for w in ws]
    # PEFT's init_lora_weights="pissa_niter_K": svd_lowrank(W, r, niter=K), no oversampling.
    for niter in (2, 4):
        seconds, results = timed(lambda: [torch.svd_lowrank(t, q=RANK, niter=niter) for t in tensors], 5)
        parts = [((u * s) @ v.T).numpy() for u, s, v in results]
        emit("randomized", f"torch-svd_lowrank-q=r-niter={niter}", 2, seconds, worst(parts))


if __name__ == "__main__":
    main()
