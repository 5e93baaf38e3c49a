"""Peers of the cross-layer cases (DESIGN §8): 24 layers × q/k/v/o 1024×1024,
n = 64, forward of all 96 pairs with factors precomputed (as adaptc's prepare).

For each case: numpy's best batched formulation (hand-batched matmuls over the
stacked layers/modules), np.einsum(optimize=True) on the whole network, and
opt_einsum with its optimal ('dp', exact for flops) path when installed; the
path search is done once, outside the timing. One JSON object per line.
"""
import json
import statistics
import sys
import time

import numpy as np

try:
    from threadpoolctl import threadpool_limits
except ImportError:  # pragma: no cover
    threadpool_limits = None
try:
    import opt_einsum as oe
except ImportError:
    oe = None

L, M, N, D = 24, 4, 64, 1024
THREADS = 2
rng = np.random.default_rng(0)


def f32(*shape):
    return rng.standard_normal(shape).astype(np.float32) * 0.3


def timed(fn, repeats=20, warmup=3):
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def emit(case, impl, seconds, variant="forward"):
    print(json.dumps({"case": case, "variant": variant, "n": N, "impl": impl, "threads": THREADS,
                      "seconds": round(seconds, 7), "flops": 0}), flush=True)


x = f32(L, N, D)


def tt():
    r = 8
    out_f, in_f = [4, 8, 4, 8], [4, 8, 4, 8]
    sizes = [L, M] + out_f + in_f
    ranks = [1] + [min(r, int(np.prod(sizes[:k + 1])), int(np.prod(sizes[k + 1:]))) for k in range(len(sizes) - 1)] + [1]
    cores = [f32(ranks[k], sizes[k], ranks[k + 1]) for k in range(len(sizes))]
    # Hand-batched LoRA form: B[l, m] = G_L G_M G_out… ([out, ρ]) and A = G_in… ([ρ, in]), precomputed.
    left = cores[0][0]                                   # [L, r1]
    left = np.einsum("la,amb->lmb", left, cores[1])       # [L, M, r2]
    for core in cores[2:6]:
        left = np.einsum("...a,aob->...ob", left, core)
    B = left.reshape(L, M, D, -1)                          # [L, M, out, ρ]
    right = cores[9][:, :, 0]
    for core in reversed(cores[6:9]):
        right = np.einsum("aib,b...->ai...", core, right)
    A = right.reshape(-1, D)                               # [ρ, in]
    Bt = np.ascontiguousarray(B.transpose(0, 1, 3, 2))     # [L, M, ρ, out]

    def batched():
        z = x @ A.T                                        # [L, n, ρ]
        return z[:, None] @ Bt                             # [L, M, n, out]
    xs = x.reshape(L, N, 4, 8, 4, 8)
    letters = "abcdefghijk"
    spec_cores = ["La", "aMb", "bOc", "cPd", "dQe", "eRf", "fSg", "gTh", "hUi", "iV"]
    ops = [cores[0][0]] + cores[1:9] + [cores[9][:, :, 0]]
    expr = ",".join(spec_cores) + ",LnSTUV->LMnOPQR"
    yield "numpy-batched", batched
    yield "numpy-einsum", lambda: np.einsum(expr, *ops, xs, optimize=True)
    if oe is not None:
        compiled = oe.contract_expression(expr, *[o.shape for o in ops], xs.shape, optimize="dp")
        yield "opt_einsum", lambda: compiled(*ops, xs)


def lora():
    r = 8
    A, B = f32(L, M, r, D), f32(L, M, D, r)
    At, Bt = np.ascontiguousarray(A.transpose(0, 1, 3, 2)), np.ascontiguousarray(B.transpose(0, 1, 3, 2))

    def batched():
        z = x[:, None] @ At                                # [L, M, n, r]
        return z @ Bt
    yield "numpy-batched", batched
    yield "numpy-einsum", lambda: np.einsum("lnd,lmrd,lmor->lmno", x, A, B, optimize=True)
    if oe is not None:
        compiled = oe.contract_expression("lnd,lmrd,lmor->lmno", x.shape, A.shape, B.shape, optimize="dp")
        yield "opt_einsum", lambda: compiled(x, A, B)


def lotr():
    r = 16
    U_in, core, U_out = f32(D, r), f32(L, M, r, r), f32(D, r)
    core_t = np.ascontiguousarray(core.transpose(0, 1, 3, 2))

    def batched():
        z = x @ U_in                                       # [L, n, r]
        z2 = z[:, None] @ core_t                           # [L, M, n, r]
        return z2 @ U_out.T
    yield "numpy-batched", batched
    yield "numpy-einsum", lambda: np.einsum("lnd,lmab,oa,db->lmno", x, core, U_out, U_in, optimize=True)
    if oe is not None:
        compiled = oe.contract_expression("lnd,lmab,oa,db->lmno", x.shape, core.shape, U_out.shape, U_in.shape, optimize="dp")
        yield "opt_einsum", lambda: compiled(x, core, U_out, U_in)


def cp():
    R = 64
    F_l, F_m, F_out, F_in = f32(L, R), f32(M, R), f32(D, R), f32(D, R)
    scale = (F_l[:, None, None, :] * F_m[None, :, None, :])  # [L, M, 1, R]

    def batched():
        z = x @ F_in                                       # [L, n, R]
        return (z[:, None] * scale) @ F_out.T              # [L, M, n, out]
    yield "numpy-batched", batched
    yield "numpy-einsum", lambda: np.einsum("lnd,lc,mc,oc,dc->lmno", x, F_l, F_m, F_out, F_in, optimize=True)
    if oe is not None:
        compiled = oe.contract_expression("lnd,lc,mc,oc,dc->lmno", x.shape, F_l.shape, F_m.shape, F_out.shape, F_in.shape,
                                          optimize="dp")
        yield "opt_einsum", lambda: compiled(x, F_l, F_m, F_out, F_in)


CASES = {"tt-xlayer": tt, "lora-xlayer": lora, "lotr-xlayer": lotr, "cp-xlayer": cp}


def main():
    asked = [a for a in sys.argv[1:] if a in CASES] or list(CASES)
    limits = threadpool_limits(limits=THREADS) if threadpool_limits else None
    for case in asked:
        results = {}
        for impl, fn in CASES[case]():
            results[impl] = fn()
            emit(case, impl, timed(fn, repeats=10 if impl != "numpy-batched" else 20))
        # The formulations agree (a peer that computes something else is no peer).
        reference = results["numpy-batched"]
        for impl, value in results.items():
            value = np.asarray(value).reshape(reference.shape)
            error = np.abs(value - reference).max() / max(np.abs(reference).max(), 1e-30)
            if error > 1e-3:
                print(f"xlayer.py: {case} {impl} disagrees with numpy-batched ({error:.2e})", file=sys.stderr)
    del limits


if __name__ == "__main__":
    main()
