"""Peer of `init-tucker` (no DESIGN target: measured as it is): LoTR's
Tucker-2 of Specs/lotr-tucker, the stacked tensor [12, 2, 768, 768] (12 layers x
q/v of 768x768) with layer and module kept whole and out, in at rank 16, on
init-tt's formula data over the 24 (layer, module) slices (Tools/Peers/init-tt.py,
`tensor`). tensorly's `partial_tucker` over modes out and in (the full modes
have no factor): the HOSVD start (init='svd'), at most 5 HOOI sweeps
(n_iter_max 5), stopping when the error changes by < 1e-6 (tol), float64 on a
copy converted inside the timed call, OpenBLAS at 2 threads. `rel_err` =
||X - X^||/||X|| of its result; `seconds` one run (minutes of SVD work).
"""
import importlib.util
import json
import os

import numpy as np
from threadpoolctl import threadpool_limits

here = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("init_tt", os.path.join(here, "init-tt.py"))
init_tt = importlib.util.module_from_spec(spec)
spec.loader.exec_module(init_tt)

L, M, N, R = 12, 2, 768, 16


def main():
    try:
        import tensorly as tl
        from tensorly.decomposition import partial_tucker
    except ImportError:
        return
    x = init_tt.tensor(slices=L * M, size=N).reshape(L, M, N, N)

    def run():
        t = x.astype(np.float64)
        (core, factors), errors = partial_tucker(t, rank=[R, R], modes=[2, 3], n_iter_max=5, init="svd", tol=1e-6)
        return t, core, factors

    with threadpool_limits(2):
        seconds, (t, core, factors) = init_tt.timed(run, repeats=1, warmup=False)
    approx = tl.tenalg.multi_mode_dot(core, factors, modes=[2, 3])
    err = float(np.linalg.norm(t - approx) / np.linalg.norm(t))
    print(json.dumps({"case": "init-tucker", "variant": "hooi", "n": L * M, "impl": "tensorly", "threads": 2,
                      "seconds": seconds, "rel_err": err, "fit": 1 - err}), flush=True)


if __name__ == "__main__":
    main()
