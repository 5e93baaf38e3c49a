"""Peers of the cross-layer cases (DESIGN §8): 24 layers × q/k/v/o 1024×1024,
n = 64, forward of all 96 pairs with factors precomputed (as adaptc's prepare),
2 threads.

Two semantics, as DESIGN §8 asks (`semantics` in each row):
- `y +=`: the base output is already in y and the peer adds x·ΔWᵀ into it, as
  adaptc's forward does: numpy (matmul into a reused buffer, then y += it),
  scipy's BLAS sgemm with beta = 1 into y itself (one call per pair, or one
  for all pairs where the last factor is shared), torch baddbmm_/addmm_ into an
  existing y, and PEFT's own forward (96 wrapped nn.Linear, the base's time
  subtracted, as lora-unmerged does for one) when peft is importable;
- `fresh`: a new y per call (numpy's hand-batched matmuls, np.einsum
  optimize=True, opt_einsum's 'dp' path, torch bmm/matmul), for reference.

Before anything is timed each peer's output is checked against a float64
reference over the definition (per pair ΔW[l, m] materialised in float64 from
the factors, y0 + x·ΔWᵀ); a peer that disagrees is not timed and the script
exits 1. Case `backward`: torch autograd's forward+backward of the batched
tt-xlayer and lora-xlayer formulations (stored factors as leaves, gradients of
the factors and of x), checked against the same graph in float64.
Implementations of a case alternate in each timing round. One JSON object per line.
"""
import json
import statistics
import sys
import time

import numpy as np
from scipy.linalg.blas import sgemm

try:
    from threadpoolctl import threadpool_limits
except ImportError:  # pragma: no cover
    threadpool_limits = None
try:
    import opt_einsum as oe
except ImportError:
    oe = None
try:
    import torch
except ImportError as error:
    torch = None
    print(f"xlayer.py: torch rows skipped ({error}; Tools/check-peft installs torch into the venv)", file=sys.stderr)
try:
    import peft
except ImportError:
    peft = None

L, M, N, D = 24, 4, 64, 1024
THREADS = 2
TOLERANCE = 1e-4  # max |peer − reference| / max |reference delta|
rng = np.random.default_rng(0)
failed = False


def f32(*shape):
    return rng.standard_normal(shape).astype(np.float32) * 0.3


x = f32(L, N, D)
y0 = (rng.standard_normal((L, M, N, D)) * 0.01).astype(np.float32)  # the base output y += adds to


def timed_alternating(fns, repeats, warmup=3):
    for _ in range(warmup):
        for fn in fns:
            fn()
    samples = [[] for _ in fns]
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            start = time.perf_counter()
            fn()
            samples[i].append(time.perf_counter() - start)
    return [statistics.median(s) for s in samples]


def emit(case, impl, seconds, semantics, variant="forward", **extra):
    row = {"case": case, "variant": variant, "n": N, "impl": impl, "semantics": semantics, "threads": THREADS,
           "seconds": round(seconds, 7), "flops": 0}
    row.update(extra)
    print(json.dumps(row), flush=True)


def reference(delta_w):
    """y0 + x·ΔW[l, m]ᵀ in float64, ΔW materialised pair by pair from the factors."""
    x64 = x.astype(np.float64)
    out = np.empty((L, M, N, D))
    for l in range(L):
        for m in range(M):
            out[l, m] = x64[l] @ delta_w(l, m).T
    return out


def agrees(case, impl, value, delta):
    global failed
    value = np.asarray(value, dtype=np.float64).reshape(delta.shape)
    error = np.abs(value - delta).max() / max(np.abs(delta).max(), 1e-30)
    if not error <= TOLERANCE:
        print(f"xlayer.py: {case} {impl} disagrees with the float64 reference ({error:.2e}); not timed", file=sys.stderr)
        failed = True
        return False
    return True


def t(a):
    return torch.from_numpy(np.ascontiguousarray(a))


# Each case yields (impl, semantics, fn): a fresh fn returns y; a `y +=` fn adds into the y it is given.

def tt():
    r = 8
    out_f, in_f = [4, 8, 4, 8], [4, 8, 4, 8]
    sizes = [L, M] + out_f + in_f
    ranks = [1] + [min(r, int(np.prod(sizes[:k + 1])), int(np.prod(sizes[k + 1:]))) for k in range(len(sizes) - 1)] + [1]
    cores = [f32(ranks[k], sizes[k], ranks[k + 1]) for k in range(len(sizes))]

    def factors(cores, xp=np):
        # Hand-batched LoRA form: B[l, m] = G_L G_M G_out… ([out, ρ]) and A = G_in… ([ρ, in]).
        left = xp.einsum("la,amb->lmb", cores[0][0], cores[1])
        for core in cores[2:6]:
            left = xp.einsum("...a,aob->...ob", left, core)
        right = cores[9][:, :, 0]
        for core in reversed(cores[6:9]):
            right = xp.einsum("aib,b...->ai...", core, right)
        return left.reshape(L, M, D, -1), right.reshape(-1, D)
    B64, A64 = factors([c.astype(np.float64) for c in cores])
    delta = reference(lambda l, m: B64[l, m] @ A64)
    B, A = factors(cores)
    Bt = np.ascontiguousarray(B.transpose(0, 1, 3, 2))     # [L, M, ρ, out]
    At = np.ascontiguousarray(A.T)
    z, tmp = np.empty((L, N, r), np.float32), np.empty((L, M, N, D), np.float32)

    def batched():
        z = x @ At                                         # [L, n, ρ]
        return z[:, None] @ Bt                             # [L, M, n, out]

    def numpy_add(y):
        np.matmul(x, At, out=z)
        np.matmul(z[:, None], Bt, out=tmp)
        y += tmp

    def sgemm_add(y):
        np.matmul(x, At, out=z)
        for l in range(L):
            for m in range(M):  # yᵀ[out, n] += Btᵀ·zᵀ, every operand Fortran-ordered in place
                sgemm(1.0, Bt[l, m].T, z[l].T, beta=1.0, c=y[l, m].T, overwrite_c=1)
    xs = x.reshape(L, N, 4, 8, 4, 8)
    spec_cores = ["La", "aMb", "bOc", "cPd", "dQe", "eRf", "fSg", "gTh", "hUi", "iV"]
    ops = [cores[0][0]] + cores[1:9] + [cores[9][:, :, 0]]
    expr = ",".join(spec_cores) + ",LnSTUV->LMnOPQR"
    yield "numpy-batched", "fresh", batched
    yield "numpy-einsum", "fresh", lambda: np.einsum(expr, *ops, xs, optimize=True)
    if oe is not None:
        compiled = oe.contract_expression(expr, *[o.shape for o in ops], xs.shape, optimize="dp")
        yield "opt_einsum", "fresh", lambda: compiled(*ops, xs)
    yield "numpy (matmul, y +=)", "y +=", numpy_add
    yield "scipy sgemm beta=1", "y +=", sgemm_add
    if torch is not None:
        xt, Att, Btt, zt = t(x), t(At), t(Bt).view(L * M, r, D), torch.empty(L, N, r)

        def torch_fresh():
            torch.matmul(xt, Att, out=zt)
            return torch.bmm(zt[:, None].expand(L, M, N, r).reshape(L * M, N, r), Btt)

        def torch_add(y):
            torch.matmul(xt, Att, out=zt)
            y.view(L * M, N, D).baddbmm_(zt[:, None].expand(L, M, N, r).reshape(L * M, N, r), Btt)
        yield "torch bmm", "fresh", torch_fresh
        yield "torch baddbmm_", "y +=", torch_add
    tt.delta, tt.cores, tt.factors = delta, cores, factors


def lora():
    r = 8
    A, B = f32(L, M, r, D), f32(L, M, D, r)
    A64, B64 = A.astype(np.float64), B.astype(np.float64)
    delta = reference(lambda l, m: B64[l, m] @ A64[l, m])
    At, Bt = np.ascontiguousarray(A.transpose(0, 1, 3, 2)), np.ascontiguousarray(B.transpose(0, 1, 3, 2))
    z, tmp = np.empty((L, M, N, r), np.float32), np.empty((L, M, N, D), np.float32)

    def batched():
        return (x[:, None] @ At) @ Bt

    def numpy_add(y):
        np.matmul(x[:, None], At, out=z)
        np.matmul(z, Bt, out=tmp)
        y += tmp

    def sgemm_add(y):
        np.matmul(x[:, None], At, out=z)
        for l in range(L):
            for m in range(M):
                sgemm(1.0, Bt[l, m].T, z[l, m].T, beta=1.0, c=y[l, m].T, overwrite_c=1)
    yield "numpy-batched", "fresh", batched
    yield "numpy-einsum", "fresh", lambda: np.einsum("lnd,lmrd,lmor->lmno", x, A, B, optimize=True)
    if oe is not None:
        compiled = oe.contract_expression("lnd,lmrd,lmor->lmno", x.shape, A.shape, B.shape, optimize="dp")
        yield "opt_einsum", "fresh", lambda: compiled(x, A, B)
    yield "numpy (matmul, y +=)", "y +=", numpy_add
    yield "scipy sgemm beta=1", "y +=", sgemm_add
    if torch is not None:
        # A layer's four A's side by side: one x·[A_q A_k A_v A_o]ᵀ per layer.
        xt = t(x)
        Acat = t(A.transpose(0, 3, 1, 2).reshape(L, D, M * r))
        Btt = t(Bt).view(L * M, r, D)

        def zs():
            return torch.bmm(xt, Acat).view(L, N, M, r).permute(0, 2, 1, 3).reshape(L * M, N, r)
        yield "torch bmm", "fresh", lambda: torch.bmm(zs(), Btt)
        yield "torch baddbmm_", "y +=", lambda y: y.view(L * M, N, D).baddbmm_(zs(), Btt)
    lora.delta, lora.A, lora.B = delta, A, B


def lotr():
    r = 16
    U_in, core, U_out = f32(D, r), f32(L, M, r, r), f32(D, r)
    U_in64, core64, U_out64 = U_in.astype(np.float64), core.astype(np.float64), U_out.astype(np.float64)
    delta = reference(lambda l, m: U_out64 @ core64[l, m] @ U_in64.T)
    core_t = np.ascontiguousarray(core.transpose(0, 1, 3, 2))
    U_outF = np.asfortranarray(U_out)
    z, z2, tmp = np.empty((L, N, r), np.float32), np.empty((L, M, N, r), np.float32), np.empty((L, M, N, D), np.float32)

    def batched():
        z = x @ U_in                                       # [L, n, r]
        z2 = z[:, None] @ core_t                           # [L, M, n, r]
        return z2 @ U_out.T

    def small():
        np.matmul(x, U_in, out=z)
        np.matmul(z[:, None], core_t, out=z2)

    def numpy_add(y):
        small()
        np.matmul(z2, U_out.T, out=tmp)
        y += tmp

    def sgemm_add(y):  # one call for all pairs: yᵀ[out, L·M·n] += U_out·z2ᵀ
        small()
        sgemm(1.0, U_outF, z2.reshape(-1, r).T, beta=1.0, c=y.reshape(-1, D).T, overwrite_c=1)
    yield "numpy-batched", "fresh", batched
    yield "numpy-einsum", "fresh", lambda: np.einsum("lnd,lmab,oa,db->lmno", x, core, U_out, U_in, optimize=True)
    if oe is not None:
        compiled = oe.contract_expression("lnd,lmab,oa,db->lmno", x.shape, core.shape, U_out.shape, U_in.shape, optimize="dp")
        yield "opt_einsum", "fresh", lambda: compiled(x, core, U_out, U_in)
    yield "numpy (matmul, y +=)", "y +=", numpy_add
    yield "scipy sgemm beta=1", "y +=", sgemm_add
    if torch is not None:
        xt, U_int, core_tt, U_outT = t(x), t(U_in), t(core_t), t(U_out).T

        def z2t():
            return torch.matmul(torch.matmul(xt, U_int)[:, None], core_tt).view(-1, r)
        yield "torch mm", "fresh", lambda: torch.mm(z2t(), U_outT)
        yield "torch addmm_", "y +=", lambda y: y.view(-1, D).addmm_(z2t(), U_outT)
    lotr.delta = delta


def cp():
    R = 64
    F_l, F_m, F_out, F_in = f32(L, R), f32(M, R), f32(D, R), f32(D, R)
    F64 = [f.astype(np.float64) for f in (F_l, F_m, F_out, F_in)]
    delta = reference(lambda l, m: (F64[2] * (F64[0][l] * F64[1][m])) @ F64[3].T)
    scale = (F_l[:, None, None, :] * F_m[None, :, None, :])  # [L, M, 1, R]
    F_outF = np.asfortranarray(F_out)
    z, zs, tmp = np.empty((L, N, R), np.float32), np.empty((L, M, N, R), np.float32), np.empty((L, M, N, D), np.float32)

    def batched():
        z = x @ F_in                                       # [L, n, R]
        return (z[:, None] * scale) @ F_out.T              # [L, M, n, out]

    def small():
        np.matmul(x, F_in, out=z)
        np.multiply(z[:, None], scale, out=zs)

    def numpy_add(y):
        small()
        np.matmul(zs, F_out.T, out=tmp)
        y += tmp

    def sgemm_add(y):
        small()
        sgemm(1.0, F_outF, zs.reshape(-1, R).T, beta=1.0, c=y.reshape(-1, D).T, overwrite_c=1)
    yield "numpy-batched", "fresh", batched
    yield "numpy-einsum", "fresh", lambda: np.einsum("lnd,lc,mc,oc,dc->lmno", x, F_l, F_m, F_out, F_in, optimize=True)
    if oe is not None:
        compiled = oe.contract_expression("lnd,lc,mc,oc,dc->lmno", x.shape, F_l.shape, F_m.shape, F_out.shape, F_in.shape,
                                          optimize="dp")
        yield "opt_einsum", "fresh", lambda: compiled(x, F_l, F_m, F_out, F_in)
    yield "numpy (matmul, y +=)", "y +=", numpy_add
    yield "scipy sgemm beta=1", "y +=", sgemm_add
    if torch is not None:
        xt, F_int, scalet, F_outT = t(x), t(F_in), t(scale), t(F_out).T

        def zst():
            return (torch.matmul(xt, F_int)[:, None] * scalet).view(-1, R)
        yield "torch mm", "fresh", lambda: torch.mm(zst(), F_outT)
        yield "torch addmm_", "y +=", lambda y: y.view(-1, D).addmm_(zst(), F_outT)
    cp.delta = delta


def run_case(case, maker):
    """Check every implementation against the float64 reference, then time those that agree, alternating."""
    impls = list(maker())
    delta = maker.delta - 0  # y0 is added below for y += peers
    checked = []
    for impl, semantics, fn in impls:
        if semantics == "y +=":
            y = y0.copy()
            yt = t(y) if impl.startswith("torch") else None
            fn(yt if yt is not None else y)
            ok = agrees(case, impl, y.astype(np.float64) - y0, delta)
            target = y  # the timed calls keep adding into one y, allocated and warmed once
            bound = (lambda fn, arg: (lambda: fn(arg)))(fn, yt if yt is not None else target)
        else:
            value = fn()
            ok = agrees(case, impl, value.numpy() if torch is not None and isinstance(value, torch.Tensor) else value, delta)
            bound = fn
        if ok:
            checked.append((impl, semantics, bound))
    slow = [c for c in checked if c[0] in ("numpy-einsum", "opt_einsum")]
    fast = [c for c in checked if c not in slow]
    for group, repeats in ((fast, 20), (slow, 10)):
        if not group:
            continue
        for (impl, semantics, _), seconds in zip(group, timed_alternating([c[2] for c in group], repeats)):
            emit(case, impl, seconds, semantics)


def peft_case():
    """PEFT's own forward on 96 wrapped nn.Linear 1024×1024 (LoRA r 8, scale 1, the
    lora-xlayer factors): seconds = median(PEFT forward) − median(the 96 base
    Linears alone), alternating, as lora-unmerged does for one pair."""
    import torch.nn as nn
    from peft import LoraConfig, inject_adapter_in_model
    torch.manual_seed(0)
    net = nn.ModuleList([nn.ModuleDict({name: nn.Linear(D, D, bias=False) for name in ("q", "k", "v", "o")}) for _ in range(L)])
    net = inject_adapter_in_model(LoraConfig(r=8, lora_alpha=8, lora_dropout=0.0, target_modules=["q", "k", "v", "o"]), net)
    mods = [[net[l][name] for name in ("q", "k", "v", "o")] for l in range(L)]
    with torch.no_grad():
        for l in range(L):
            for m in range(M):
                mods[l][m].lora_A["default"].weight.copy_(t(lora.A[l, m]))
                mods[l][m].lora_B["default"].weight.copy_(t(lora.B[l, m]))
    xt = t(x)

    def wrapped():
        return [[mods[l][m](xt[l]) for m in range(M)] for l in range(L)]

    def base():
        return [[mods[l][m].base_layer(xt[l]) for m in range(M)] for l in range(L)]
    with torch.inference_mode():
        out, b = wrapped(), base()
        value = np.stack([np.stack([(out[l][m] - b[l][m]).numpy() for m in range(M)]) for l in range(L)])
        if not agrees("lora-xlayer", "peft", value, lora.delta):
            return
        total, alone = timed_alternating([wrapped, base], repeats=15)
    emit("lora-xlayer", f"peft {peft.__version__} (forward − base)", total - alone, "y +=",
         seconds_forward=round(total, 7), seconds_base=round(alone, 7))


def autograd_case():
    """torch autograd forward+backward of the batched tt-xlayer and lora-xlayer
    formulations: y = y0 + x·ΔWᵀ from the stored factors (leaves), then
    y.backward(dy), gradients of every factor and of x."""
    dy = t((rng.standard_normal((L, M, N, D))).astype(np.float32))
    y0t = t(y0)

    def tt_graph(cores, xt, y0t):
        B, A = tt.factors(cores, xp=torch)
        r = A.shape[0]
        z = torch.matmul(xt, A.T)
        Bt = B.transpose(-1, -2).reshape(L * M, r, D)
        return torch.baddbmm(y0t.view(L * M, N, D), z[:, None].expand(L, M, N, r).reshape(L * M, N, r), Bt)

    def lora_graph(params, xt, y0t):
        A, B = params
        r = A.shape[2]
        zs = torch.bmm(xt, A.permute(0, 3, 1, 2).reshape(L, D, M * r)).view(L, N, M, r).permute(0, 2, 1, 3).reshape(L * M, N, r)
        return torch.baddbmm(y0t.view(L * M, N, D), zs, B.transpose(-1, -2).reshape(L * M, r, D))
    for variant, graph, params in (("forward+backward", tt_graph, tt.cores), ("lora forward+backward", lora_graph, [lora.A, lora.B])):
        def step(dtype=torch.float32, keep=None):
            leaves = [t(p).to(dtype).requires_grad_() for p in params] if keep is None else keep
            xt = t(x).to(dtype).requires_grad_() if keep is None else keep_x[0]
            for leaf in leaves + [xt]:
                leaf.grad = None
            y = graph(leaves, xt, y0t.to(dtype))
            y.backward(dy.to(dtype).view(y.shape))
            return y, [leaf.grad for leaf in leaves] + [xt.grad]
        keep_x = [t(x).requires_grad_()]
        kept = [t(p).requires_grad_() for p in params]
        y, grads = step(keep=kept)
        y64, grads64 = step(torch.float64)
        delta = tt.delta if graph is tt_graph else lora.delta
        ok = agrees("backward", f"torch/autograd {variant}", y.detach().numpy().astype(np.float64).reshape(y0.shape) - y0, delta)
        for g, g64 in zip(grads, grads64):
            ok = ok and agrees("backward", f"torch/autograd {variant} gradient", g.numpy(), g64.numpy())
        if ok:
            emit("backward", "torch/autograd", timed_alternating([lambda: step(keep=kept)], repeats=10)[0], "y +=",
                 variant=variant)


CASES = {"tt-xlayer": tt, "lora-xlayer": lora, "lotr-xlayer": lotr, "cp-xlayer": cp}


def main():
    asked = [a for a in sys.argv[1:] if a in CASES or a == "backward"] or list(CASES) + ["backward"]
    limits = threadpool_limits(limits=THREADS) if threadpool_limits else None
    if torch is not None:
        torch.set_num_threads(THREADS)
    for case in asked:
        if case in CASES:
            run_case(case, CASES[case])
    if torch is not None and peft is not None and "lora-xlayer" in asked:
        peft_case()
    elif "lora-xlayer" in asked:
        print("xlayer.py: PEFT row skipped (peft or torch not importable)", file=sys.stderr)
    if torch is not None and "backward" in asked:
        for case in ("tt-xlayer", "lora-xlayer"):
            if not hasattr(CASES[case], "delta"):
                list(CASES[case]())
        autograd_case()
    del limits
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
