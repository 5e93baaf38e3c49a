"""Peers of `init-tt` (DESIGN §8): TT-SVD of the stacked tensor [24, 1024, 1024]
(order [layer, out, in]) to bond ranks 8, on the same formula-defined data as
adaptc-bench (Sources/adaptc-bench/InitTTDenseBench.swift):
X[l,o,i] = sum_{k<24} a_lk b_ok c_ik + 0.01 h((l*1024 + o)*1024 + i),
a_lk = sin(0.7(l+1)(k+1))/(k+1), b_ok = sin(0.37(o+1)(k+1)), c_ik = cos(0.11(i+1)(k+1)),
h the splitmix64-style hash of the flat index as a float in [-1, 1); float64, then float32.

- numpy-gram-eigh: TT-SVD through Gram matrices in float64 (each unfolding's
  Gram on its smaller side, np.linalg.eigh; a tall one gives V, then QR of C V),
  left to right, OpenBLAS at 1 and at 2 threads (its best thread count is the bar);
- tensorly: tensor_train(rank=[1, 8, 8, 1]) (float64, its truncated SVDs).

Both start from the float32 tensor in memory and convert it to float64 inside
the timed call (adaptc reads float32 too). `rel_err` = ||X - X^||/||X|| of the
rebuilt train in float64; `seconds` the median of 3 runs after one warm-up
(numpy), one run (tensorly: tens of seconds of SVD, not first touches).
"""
import json
import statistics
import time

import numpy as np
from threadpoolctl import threadpool_limits

L, N, R, K = 24, 1024, 8, 24


def hash_noise(e):
    z = e.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z ^= z >> np.uint64(31)
    return (z >> np.uint64(11)).astype(np.float64) * 2.0**-52 - 1


def tensor(slices=L, size=N):
    f = np.arange(1, K + 1)[None, :]
    a = np.sin(0.7 * np.arange(1, slices + 1)[:, None] * f) / f
    b = np.sin(0.37 * np.arange(1, size + 1)[:, None] * f)
    c = np.cos(0.11 * np.arange(1, size + 1)[:, None] * f)
    x = np.empty((slices, size, size), dtype=np.float32)
    flat = np.arange(size * size, dtype=np.uint64)
    for l in range(slices):
        x[l] = ((b * a[l]) @ c.T + 0.01 * hash_noise(flat + np.uint64(l * size * size)).reshape(size, size)).astype(np.float32)
    return x


def gram_eigh_tt(x32):
    t = x32.astype(np.float64)
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
    return cores, c


def rebuild(cores, last):
    full = last
    for u in reversed(cores):
        full = u @ full.reshape(u.shape[1], -1)
    return full.reshape(L, N, N)


def rel_err(x32, approx):
    t = x32.astype(np.float64)
    return float(np.linalg.norm(t - approx) / np.linalg.norm(t))


def timed(run, repeats=3, warmup=True):
    if warmup:
        run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def emit(**fields):
    print(json.dumps({"case": "init-tt", "variant": "tt-svd", "n": L, **fields}), flush=True)


def main():
    x = tensor()
    # One thread as well: on a loaded 2-core machine OpenBLAS's two threads can spin against each other.
    with threadpool_limits(1):
        seconds, (cores, last) = timed(lambda: gram_eigh_tt(x))
        emit(impl="numpy-gram-eigh", threads=1, seconds=seconds, rel_err=rel_err(x, rebuild(cores, last)))
    with threadpool_limits(2):
        seconds, (cores, last) = timed(lambda: gram_eigh_tt(x))
        emit(impl="numpy-gram-eigh", threads=2, seconds=seconds, rel_err=rel_err(x, rebuild(cores, last)))
        try:
            import tensorly as tl
            from tensorly.decomposition import tensor_train
        except ImportError:
            return
        # One run: its tens of seconds are SVD work, not first touches of memory.
        seconds, factors = timed(lambda: tensor_train(x.astype(np.float64), rank=[1, R, R, 1]), repeats=1, warmup=False)
        emit(impl="tensorly", threads=2, seconds=seconds, rel_err=rel_err(x, tl.tt_to_tensor(factors)))


if __name__ == "__main__":
    main()
