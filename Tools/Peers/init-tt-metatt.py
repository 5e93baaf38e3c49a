"""Peers of `init-tt-metatt` (DESIGN §8): TT-SVD of MetaTT's stacked weights
(24 layers x q/k/v/o of 1024x1024, order [in, layer, module, out], rank 8, the
scale alpha/r = 2 folded) on the same formula-defined weights as adaptc-bench:
W[l,m] = U V_lm / 8 + 0.02 sin(12.9898 (o*1024 + i) + 78.233 (4l + m)),
U[o,k] = sin(0.37 (o+1)(k+1)), V_lm[k,i] = cos(0.11 (i+1)(k+1) + l + 0.5m).

- numpy: Gram-eigh TT-SVD in float64 (the Gram of each unfolding on its smaller
  side, np.linalg.eigh), OpenBLAS at 2 threads, the stacked tensor held;
- tensorly: tensor_train(rank=[1, 8, 8, 8, 1]), when importable.

`rel_err`: ||W - dW|| / ||W|| of the train; `seconds`: the median of 3 runs,
building the stacked tensor from the float32 weights included (as adaptc reads
its base); `stacked_mb`: the float32 stacked tensor every peer holds.
"""
import json
import statistics
import time

import numpy as np
from threadpoolctl import threadpool_limits

L, M, N, R = 24, 4, 1024, 8


def weights():
    o = np.arange(N)[:, None]
    k = np.arange(32)[None, :]
    u = np.sin(0.37 * (o + 1) * (k + 1))
    flat = np.arange(N * N).reshape(N, N)
    out = np.empty((L, M, N, N), dtype=np.float32)
    for l in range(L):
        for m in range(M):
            v = np.cos(0.11 * (np.arange(N)[None, :] + 1) * (np.arange(32)[:, None] + 1) + l + 0.5 * m)
            out[l, m] = (u @ v / 8 + 0.02 * np.sin(12.9898 * flat + 78.233 * (4 * l + m))).astype(np.float32)
    return out


def gram_eigh_tt(w):
    t = (w.astype(np.float64) / 2).transpose(3, 0, 1, 2)  # [in, layer, module, out]
    sizes, cores, left, c = t.shape, [], 1, t
    for k in range(len(sizes) - 1):
        c = c.reshape(left * sizes[k], -1)
        if c.shape[0] <= c.shape[1]:
            _, u = np.linalg.eigh(c @ c.T)
            u = u[:, ::-1][:, :R]
        else:
            _, v = np.linalg.eigh(c.T @ c)
            u, _ = np.linalg.qr(c @ v[:, ::-1][:, :R])
        cores.append(u)
        c = u.T @ c
        left = u.shape[1]
    full = c
    for u in reversed(cores):
        full = (u @ full.reshape(u.shape[1], -1))
    approx = full.reshape(sizes)
    return np.linalg.norm(t - approx) / np.linalg.norm(t)


def emit(**fields):
    print(json.dumps({"case": "init-tt-metatt", **fields}), flush=True)


def main():
    w = weights()
    stacked_mb = w.nbytes / 2**20
    with threadpool_limits(2):
        times, err = [], None
        for _ in range(3):
            start = time.perf_counter()
            err = gram_eigh_tt(w)
            times.append(time.perf_counter() - start)
        emit(variant="tt-svd", impl="numpy-gram-eigh", threads=2, seconds=statistics.median(times),
             rel_err=float(err), stacked_mb=stacked_mb)
        try:
            import tensorly as tl
            from tensorly.decomposition import tensor_train
        except ImportError:
            return
        t = (w.astype(np.float64) / 2).transpose(3, 0, 1, 2)
        times = []
        for _ in range(3):
            start = time.perf_counter()
            factors = tensor_train(t, rank=[1, R, R, R, 1])
            times.append(time.perf_counter() - start)
        approx = tl.tt_to_tensor(factors)
        emit(variant="tt-svd", impl="tensorly", threads=2, seconds=statistics.median(times),
             rel_err=float(np.linalg.norm(t - approx) / np.linalg.norm(t)), stacked_mb=stacked_mb)


if __name__ == "__main__":
    main()
