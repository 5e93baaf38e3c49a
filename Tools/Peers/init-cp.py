"""Peer of `init-cp` (DESIGN §8): tensorly's `parafac` on the tensor
adaptc-bench decomposes, [48, 384, 384] (48 stacked 384x384 weights):
X[p,o,i] = sum_{k<24} sin(0.7(p+1)(k+1)) sin(0.37(o+1)(k+1)) cos(0.11(i+1)(k+1)) / (k+1)
         + 0.01 sin(12.9898 (p*384^2 + o*384 + i)), float64 then float32.

Same start and rule as adaptc's cp-als: rank 16, init='svd' (the leading left
singular vectors of each unfolding; tensorly scales mode 0's by S, which the
first ALS update never reads), tol 1e-6 on the change of ||X - X^||/||X||
(= 1 - fit; cvg_criterion 'abs_rec_error'), n_iter_max 100, no normalisation
(it changes no iterate's reconstruction). tensorly runs in float64 (adaptc's
sums are float64) on a float64 copy made outside the timing; OpenBLAS at 2
threads. `seconds`: the median of 3 runs; `fit`: 1 - the last error.
"""
import json
import statistics
import time

import numpy as np
from threadpoolctl import threadpool_limits

P, N, R, TERMS = 48, 384, 16, 24


def tensor():
    k = np.arange(TERMS)
    a = np.sin(0.7 * (np.arange(P)[:, None] + 1) * (k + 1)) / (k + 1)
    b = np.sin(0.37 * (np.arange(N)[:, None] + 1) * (k + 1))
    c = np.cos(0.11 * (np.arange(N)[:, None] + 1) * (k + 1))
    x = np.einsum("pk,ok,ik->poi", a, b, c)
    x += 0.01 * np.sin(12.9898 * np.arange(P * N * N, dtype=np.float64)).reshape(P, N, N)
    return x.astype(np.float32)


def main():
    import tensorly as tl
    from tensorly.decomposition import parafac

    x = tensor().astype(np.float64)
    with threadpool_limits(2):
        times, errors = [], None
        for _ in range(3):
            start = time.perf_counter()
            _, errors = parafac(x, rank=R, init="svd", tol=1e-6, n_iter_max=100, return_errors=True)
            times.append(time.perf_counter() - start)
    print(json.dumps({"case": "init-cp", "variant": "cp-als", "n": P, "impl": "tensorly-parafac", "threads": 2,
                      "seconds": statistics.median(times), "sweeps": len(errors), "fit": 1 - float(errors[-1]),
                      "rel_err": float(errors[-1]), "tensorly": tl.__version__}), flush=True)


if __name__ == "__main__":
    main()
